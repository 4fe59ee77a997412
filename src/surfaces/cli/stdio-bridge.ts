// `islet serve` over stdio is a front for the daemon: it relays the MCP
// client's stdin and stdout to one MCP session on the daemon's socket. The
// session's owner is this process's (--owner, else [server] stdio_owner).
import { request } from 'node:http';
import type { Socket } from 'node:net';
import { IsletError } from '../../core/errors.js';
import { STDIO_BRIDGE_PATH, STDIO_UPGRADE } from '../daemon/daemon.js';

/** Relays stdin/stdout until either side ends; resolves with the reason. */
export function bridgeStdio(socketPath: string, owner: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({
      socketPath, path: STDIO_BRIDGE_PATH, host: 'localhost',
      headers: { Connection: 'Upgrade', Upgrade: STDIO_UPGRADE, 'x-islet-owner': owner },
    });
    req.once('response', (res) => reject(new IsletError('HOST_PREREQUISITE', `the daemon refused the stdio bridge (HTTP ${res.statusCode})`,
      'restart it: islet daemon stop')));
    req.once('error', (e) => reject(new IsletError('HOST_PREREQUISITE', `cannot reach the islet daemon: ${e.message}`, 'islet daemon status', undefined, { cause: e })));
    req.once('upgrade', (_res, socket: Socket, head: Buffer) => {
      if (head.length > 0) process.stdout.write(head);
      process.stdin.pipe(socket);
      socket.pipe(process.stdout);
      process.stdin.once('end', () => { socket.end(); resolve('stdin closed'); });
      socket.once('close', () => resolve('the daemon closed the connection'));
      socket.once('error', () => resolve('the daemon connection failed'));
    });
    req.end();
  });
}
