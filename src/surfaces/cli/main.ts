// The islet CLI: parse, call the service, render. Errors are rendered once
// here: `error[CODE]: message`, `hint: ...`, and the code's exit status.
import { Command, CommanderError } from 'commander';
import { exitCodeFor, toIsletError } from '../../core/errors.js';
import { registerCheck } from './check.js';
import { registerCompletion } from './completion.js';
import { registerDaemon } from './daemon.js';
import { registerImage } from './image.js';
import { registerKernel } from './kernel.js';
import { registerRun } from './run.js';
import { registerServe } from './serve.js';
import { registerSession } from './session.js';
import { registerSetup } from './setup.js';
import { registerStatus } from './status.js';
import { registerWs } from './ws.js';

export function buildProgram(): Command {
  const program = new Command('islet')
    .description('microVM workspaces for AI agents')
    .version('0.1.0')
    .showHelpAfterError()
    .exitOverride();
  registerSetup(program);
  registerCheck(program);
  registerRun(program);
  registerServe(program);
  registerDaemon(program);
  registerStatus(program);
  registerWs(program);
  registerSession(program);
  registerImage(program);
  registerKernel(program);
  registerCompletion(program); // last: it reads the whole tree
  return program;
}

export function renderError(e: unknown): number {
  const err = toIsletError(e);
  process.stderr.write(`error[${err.code}]: ${err.message}\n`);
  if (err.hint) process.stderr.write(`hint: ${err.hint}\n`);
  if (err.code === 'INTERNAL' && err.cause instanceof Error && err.cause.stack) process.stderr.write(`${err.cause.stack}\n`);
  return exitCodeFor(err.code);
}

async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      process.exitCode = e.exitCode === 0 ? 0 : 64;
      return;
    }
    process.exitCode = renderError(e);
  }
}

await main(process.argv);
