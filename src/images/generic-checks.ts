// The checks `islet image verify` runs on an image that has no recipe (an
// import): what islet itself needs of any root filesystem, nothing about
// what the image is for. Written for the smallest shells (dash, busybox ash):
// no bashisms, no tools beyond coreutils-level ones.
import type { VerifyCheck } from './recipe.js';

export function genericChecks(o: { injectAgent: boolean }): VerifyCheck[] {
  const checks: VerifyCheck[] = [
    { name: 'exec: the agent runs a command', run: 'echo islet-exec-ok', expect: 'islet-exec-ok', timeoutMs: 30_000 },
    { name: 'exec: /bin/sh, PATH and uname', run: 'command -v sh >/dev/null && uname -sr', expect: 'Linux', timeoutMs: 30_000 },
    {
      name: 'files: the root filesystem is writable',
      run: 'f=/.islet-verify-$$; echo islet-rw > "$f" && cat "$f" && rm -f "$f"',
      expect: 'islet-rw',
      timeoutMs: 30_000,
    },
    {
      name: 'files: /tmp, /proc and /dev are mounted',
      run: 'test -d /tmp && test -r /proc/self/status && test -c /dev/null && echo mounts-ok',
      expect: 'mounts-ok',
      timeoutMs: 30_000,
    },
    {
      // Applies only when the VM has a NIC: verify boots with user-mode networking, so it does.
      name: 'network: eth0 up with a default route and a resolver',
      run: [
        'if [ ! -e /sys/class/net/eth0 ]; then echo "no network device (not applicable)"; exit 0; fi',
        // The link comes up asynchronously after the agent sets IFF_UP: give it 5 s.
        'i=0; while ! grep -qE "^(up|unknown)$" /sys/class/net/eth0/operstate && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done',
        'grep -qE "^(up|unknown)$" /sys/class/net/eth0/operstate || { echo "eth0 is $(cat /sys/class/net/eth0/operstate)" >&2; exit 1; }',
        'awk \'$2 == "00000000" { found = 1 } END { exit !found }\' /proc/net/route 2>/dev/null ' +
          '|| grep -q "^eth0[[:space:]]*00000000" /proc/net/route || { echo "no default route" >&2; exit 1; }',
        'grep -q "^nameserver" /etc/resolv.conf || { echo "no nameserver in /etc/resolv.conf" >&2; exit 1; }',
        'echo network-ok',
      ].join('\n'),
      timeoutMs: 30_000,
    },
  ];
  if (o.injectAgent) {
    checks.push({
      name: 'agent: PID 1 is the agent injected from the initramfs',
      run: 'readlink /proc/1/exe',
      expect: '/run/islet/islet-agent',
      timeoutMs: 30_000,
    });
  }
  return checks;
}
