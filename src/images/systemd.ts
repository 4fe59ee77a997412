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

/**
 * The network in a full-init image. When the agent is PID 1 it configures
 * eth0 from islet.net on the kernel command line itself; as a systemd
 * service it does not, so this oneshot does the same with iproute2 before
 * network.target (sshd, OpenCode and friends then have an address to serve
 * on). No islet.net, or no `ip` in the image: nothing to do.
 */
export const NETWORK_UNIT_FILE = '/etc/systemd/system/islet-network.service';
export const NETWORK_SCRIPT_FILE = '/usr/local/lib/islet/network-up';

export const NETWORK_SCRIPT = `#!/bin/sh
# islet: configure the VM's interface from islet.net=ADDR/PREFIX[,gw=IP][,dns=IP]... on the
# kernel command line, as islet-agent does when it is PID 1 (fast init).
set -eu
v=
for w in $(cat /proc/cmdline); do
  case "$w" in islet.net=*) v=\${w#islet.net=} ;; esac
done
if [ -z "$v" ] || [ "$v" = none ]; then exit 0; fi
command -v ip >/dev/null || { echo "islet.net=$v given but this image has no ip (iproute2)" >&2; exit 0; }
# The VM's NIC (virtio_net, loaded by the initramfs): the first interface backed by a device,
# which leaves out lo and virtual ones such as sit0.
dev=
for d in /sys/class/net/*; do
  if [ -e "$d/device" ]; then dev=\${d##*/}; break; fi
done
[ -n "$dev" ] || { echo "islet.net=$v given but the VM has no network interface" >&2; exit 1; }
ip link set lo up
ip addr replace "\${v%%,*}" dev "$dev"
ip link set "$dev" up
dns=
old=$IFS; IFS=,
for kv in \${v#*,}; do
  case "$kv" in
    gw=*) ip route replace default via "\${kv#gw=}" dev "$dev" ;;
    dns=*) dns="$dns \${kv#dns=}" ;;
  esac
done
IFS=$old
if [ -n "$dns" ]; then
  { echo '# written by islet-network.service from islet.net'; for d in $dns; do echo "nameserver $d"; done; } > /etc/resolv.conf
fi
`;

export const NETWORK_UNIT = `[Unit]
Description=islet: configure the network from islet.net on the kernel command line
DefaultDependencies=no
After=local-fs.target systemd-udevd.service
Before=network.target network-online.target
Wants=network.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh ${NETWORK_SCRIPT_FILE}

[Install]
WantedBy=multi-user.target
`;
