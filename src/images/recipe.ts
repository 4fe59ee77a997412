// Image recipes are data (images/<name>/recipe.json), validated here so a
// typo in a recipe fails with its path instead of as a strange build.
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { ImageNotFoundError } from '../core/errors.js';
import { imageBuildFailed } from './errors.js';
import { recipePath } from './paths.js';

const debianPackage = z.string().regex(/^[a-z0-9][a-z0-9+.-]+$/, 'must be a Debian package name');

export const RecipeSchema = z.object({
  name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,39}$/),
  parent: z.string().nullable().describe('image this one extends; null = built from scratch'),
  packages: z.array(debianPackage).describe('installed on top of the variant'),
  variant: z.enum(['minbase', 'required', 'important', 'standard']).describe('mmdebstrap --variant'),
  initMode: z.enum(['fast', 'full']).describe('fast: the agent is PID 1; full: systemd starts the agent'),
  sizeLimitMB: z.number().int().min(8).max(65536).describe('fail the build if the shrunk filesystem is larger'),
  extraFreeMB: z.number().int().min(0).max(65536).describe('free space added after shrinking (sparse in the file)'),
}).strict();

export type Recipe = z.infer<typeof RecipeSchema>;

const NAME = /^[a-z0-9][a-z0-9-]{0,39}$/;

export async function loadRecipe(name: string): Promise<Recipe> {
  if (!NAME.test(name)) throw new ImageNotFoundError(name, 'not a valid image name');
  const file = recipePath(name);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    throw new ImageNotFoundError(name, `no recipe at ${file}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw imageBuildFailed(`${file} is not valid JSON: ${(e as Error).message}`, 'fix the recipe file', { file });
  }
  const r = RecipeSchema.safeParse(raw);
  if (!r.success) {
    const issues = r.error.issues.map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`).join('; ');
    throw imageBuildFailed(`invalid recipe ${file}: ${issues}`, 'fix the recipe file', { file });
  }
  if (r.data.name !== name) throw imageBuildFailed(`${file} names itself "${r.data.name}"`, `set "name": "${name}"`, { file });
  return r.data;
}
