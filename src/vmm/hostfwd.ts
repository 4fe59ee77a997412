// Live port forwards on a VM's user-mode network, through QMP's
// human-monitor-command (QEMU has no QMP command for hostfwd). HMP reports
// failure as text with a successful QMP reply, so its output is mapped to
// errors here, once.
import { HmpError, IsletError, PortInUseError } from '../core/errors.js';
import { hostfwdRule, PortForward, USER_NET } from './argv.js';
import type { QmpClient } from './qmp.js';

const hmp = (qmp: QmpClient, line: string): Promise<string> =>
  qmp.execute<string>('human-monitor-command', { 'command-line': line }).then((out) => String(out ?? '').trim());

/** Adds tcp:127.0.0.1:host-:guest to the VM's netdev; PORT_IN_USE when QEMU cannot bind the host port. */
export async function hostfwdAdd(qmp: QmpClient, f: PortForward): Promise<void> {
  const rule = hostfwdRule(f);
  const out = await hmp(qmp, `hostfwd_add ${USER_NET.netdevId} ${rule}`);
  if (out === '') return;
  // QEMU: "could not set up host forwarding rule '<rule>'" when the bind fails.
  if (/could not set up host forwarding rule/i.test(out)) throw new PortInUseError(f.hostPort, out);
  throw hmpError('hostfwd_add', out);
}

/** Removes the forward from the host port; false when QEMU had no such rule. */
export async function hostfwdRemove(qmp: QmpClient, hostPort: number): Promise<boolean> {
  const out = await hmp(qmp, `hostfwd_remove ${USER_NET.netdevId} tcp:${USER_NET.hostAddress}:${hostPort}`);
  // QEMU: "host forwarding rule for tcp:127.0.0.1:<port> removed" or "... not found".
  if (/ removed$/.test(out)) return true;
  if (/ not found$/.test(out)) return false;
  throw hmpError('hostfwd_remove', out);
}

function hmpError(command: string, out: string): IsletError {
  return new HmpError(command, out, 'the VM may have no user-mode network (check [network] mode); see details');
}
