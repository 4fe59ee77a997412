// Host TCP ports for port forwards: a probe bind on 127.0.0.1 tells whether
// a port is free (or, with port 0, picks one). The probe socket is closed
// before QEMU binds, so a race is possible; the caller retries on PORT_IN_USE.
import net from 'node:net';
import { InternalError, InvalidArgumentError, PortInUseError } from '../core/errors.js';

export const FORWARD_HOST = '127.0.0.1';

/** Binds and releases 127.0.0.1:port; returns the port bound (a free one for 0). */
export function probePort(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EADDRINUSE') reject(new PortInUseError(port));
      else if (e.code === 'EACCES') {
        reject(new InvalidArgumentError(`host port ${port} needs privileges islet does not have`, 'use a host port of 1024 or above, or omit host_port',
          { host_port: port }));
      } else reject(new InternalError(`probe bind of ${FORWARD_HOST}:${port} failed: ${e.message}`, { details: { host_port: port }, cause: e }));
    });
    srv.listen({ host: FORWARD_HOST, port, exclusive: true }, () => {
      const got = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(got));
    });
  });
}
