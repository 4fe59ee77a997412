// What a `full` init image needs beyond its packages: systemd is PID 1 (stage
// 1 execs /sbin/init), so something must start the agent. It runs in service
// mode (not PID 1), where it finds its virtio-serial port by name.

export const AGENT_UNIT_FILE = '/etc/systemd/system/islet-agent.service';

// No dependency on the port's .device unit: udev does not tag virtio ports
// for systemd, so that unit may never appear, and virtio_console is already
// loaded by the initramfs. Restarts are unlimited and quick because the host
// waits on this agent for the whole boot.
export const AGENT_UNIT = `[Unit]
Description=islet guest agent
Documentation=https://github.com/islet/islet/blob/main/agent/README.md
After=local-fs.target
StartLimitIntervalSec=0

[Service]
Type=simple
ExecStart=/usr/local/bin/islet-agent
Restart=always
RestartSec=200ms
# The agent is the host's only way in: never let the OOM killer pick it first.
OOMScoreAdjust=-900

[Install]
WantedBy=multi-user.target
`;

/**
 * Masked in every full-init image. Nobody logs in on the console (the host
 * talks to the agent), and a getty waits for its tty's .device unit, which
 * udev never announces for the microvm console: boot would hang there for
 * the start timeout and end "degraded".
 */
export const MASKED_UNITS = ['getty@.service', 'serial-getty@.service', 'console-getty.service', 'getty-static.service'];

/** `systemctl mask` without systemctl. */
export function maskUnitArgv(tree: string, unit: string): string[] {
  return ['sh', '-c', 'mkdir -p "$1/etc/systemd/system" && ln -sfn /dev/null "$1/etc/systemd/system/$2"', 'mask-unit', tree, unit];
}

const UNIT_DIRS = ['etc/systemd/system', 'lib/systemd/system', 'usr/lib/systemd/system'];

/**
 * `systemctl enable` without systemctl: a symlink in multi-user.target.wants,
 * which works the same on a tree we are not booted into (and inside the
 * unshare helper). Fails if no unit file of that name exists in the tree.
 */
export function enableUnitArgv(tree: string, unit: string): string[] {
  const script = [
    'set -e',
    `for d in ${UNIT_DIRS.join(' ')}; do`,
    '  if [ -e "$1/$d/$2" ]; then',
    '    mkdir -p "$1/etc/systemd/system/multi-user.target.wants"',
    '    ln -sfn "/$d/$2" "$1/etc/systemd/system/multi-user.target.wants/$2"',
    '    exit 0',
    '  fi',
    'done',
    'echo "no unit file $2 in the image (looked in $(echo ' + UNIT_DIRS.join(' ') + '))" >&2',
    'exit 1',
  ].join('\n');
  return ['sh', '-c', script, 'enable-unit', tree, unit];
}
