// Long steps (package installs, image builds, boots) report what they are
// doing through this callback; the CLI prints it, tests collect it.
export type Progress = (message: string) => void;

export const silent: Progress = () => {};
