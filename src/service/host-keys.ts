// A guest's SSH host key, made on the host. Every workspace started from
// saved state (a template, a pool VM, a fork) carries the host keys of the VM
// that state came from; each gets its own before it counts as running. Made
// here rather than by ssh-keygen in the guest: under TCG an RSA key took 7.2 s
// there, and any program started in a fresh VM costs translation time, while
// Node's crypto makes an ed25519 pair in well under a millisecond, with no
// host program and no private key written on the host's disk.
//
// Only ed25519: every OpenSSH client since 6.5 (2014) accepts it, and sshd
// without HostKey lines loads whichever of its default key files exist.
import { generateKeyPairSync, randomBytes } from 'node:crypto';

export interface HostKey {
  /** The private key in OpenSSH's own format (openssh-key-v1, unencrypted): what sshd reads from ssh_host_ed25519_key. */
  privateKey: string;
  /** The public line for ssh_host_ed25519_key.pub: "ssh-ed25519 <base64> <comment>". */
  publicKey: string;
}

const TYPE = 'ssh-ed25519';

/** An SSH wire string: uint32 length, then the bytes. */
function str(b: Buffer | string): Buffer {
  const v = typeof b === 'string' ? Buffer.from(b) : b;
  const n = Buffer.alloc(4);
  n.writeUInt32BE(v.length);
  return Buffer.concat([n, v]);
}

export function newHostKey(comment: string): HostKey {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const pub = Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url');
  const seed = Buffer.from(privateKey.export({ format: 'jwk' }).d!, 'base64url');
  if (pub.length !== 32 || seed.length !== 32) throw new Error('ed25519 key of unexpected size');
  const blob = Buffer.concat([str(TYPE), str(pub)]);
  // PROTOCOL.key: two equal check words, the key (OpenSSH keeps seed || public as the private part), the comment,
  // then padding 1, 2, 3, ... to the cipher's block size (8 for "none").
  const check = randomBytes(4);
  let body = Buffer.concat([check, check, str(TYPE), str(pub), str(Buffer.concat([seed, pub])), str(comment)]);
  const pad = (8 - (body.length % 8)) % 8;
  body = Buffer.concat([body, Buffer.from(Array.from({ length: pad }, (_, i) => i + 1))]);
  const whole = Buffer.concat([Buffer.from('openssh-key-v1\0'), str('none'), str('none'), str(''), Buffer.from([0, 0, 0, 1]), str(blob), str(body)]);
  const b64 = whole.toString('base64').replace(/.{1,70}/g, '$&\n');
  return {
    privateKey: `-----BEGIN OPENSSH PRIVATE KEY-----\n${b64}-----END OPENSSH PRIVATE KEY-----\n`,
    publicKey: `${TYPE} ${blob.toString('base64')} ${comment}`,
  };
}
