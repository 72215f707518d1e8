import { execFileSync } from 'node:child_process';

/**
 * A network namespace of a test's own (`ip netns`), joined to this one by veth pairs: a process started in it
 * (`wrap`) reaches this namespace only over those links, and a test cuts a link (`cut`: the host side goes
 * down, so packets are dropped and open connections hang, as across a real partition) and mends it. Needs
 * root (CAP_NET_ADMIN) and iproute2. Everything is removed by `remove`.
 */
export interface Netns {
  readonly name: string;
  /** Per link: the address of this side (`host`) and of the namespace's side (`inside`). */
  readonly links: readonly { host: string; inside: string; device: string }[];
  /** Prefix of a command that runs in the namespace. */
  readonly wrap: string[];
  cut(link: number): void;
  mend(link: number): void;
  remove(): void;
}

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A namespace with `links` veth pairs, each a /30 of its own: 10.(231+i).N.1 here, 10.(231+i).N.2 inside. */
export function makeNetns(tag: string, links: number): Netns {
  const n = process.pid % 250;
  const name = `orch-${tag}-${process.pid}`;
  const made: { host: string; inside: string; device: string }[] = [];
  const remove = (): void => {
    try {
      ip('netns', 'del', name);
    } catch {
      // not there
    }
    for (const l of made) {
      try {
        ip('link', 'del', l.device);
      } catch {
        // went with the namespace
      }
    }
  };
  remove();
  try {
    ip('netns', 'add', name);
    ip('netns', 'exec', name, 'ip', 'link', 'set', 'lo', 'up');
    for (let i = 0; i < links; i++) {
      const device = `o${n}${tag.slice(0, 3)}${i}h`;
      const peer = `o${n}${tag.slice(0, 3)}${i}n`;
      const host = `10.${231 + i}.${n}.1`;
      const inside = `10.${231 + i}.${n}.2`;
      made.push({ host, inside, device });
      try {
        ip('link', 'del', device);
      } catch {
        // none left over
      }
      ip('link', 'add', device, 'type', 'veth', 'peer', 'name', peer);
      ip('link', 'set', peer, 'netns', name);
      ip('addr', 'add', `${host}/30`, 'dev', device);
      ip('link', 'set', device, 'up');
      ip('netns', 'exec', name, 'ip', 'addr', 'add', `${inside}/30`, 'dev', peer);
      ip('netns', 'exec', name, 'ip', 'link', 'set', peer, 'up');
    }
  } catch (err) {
    remove();
    const detail = (err as { stderr?: Buffer }).stderr?.toString().trim() ?? String(err);
    throw new Error(`could not make the network namespace ${name} (the partition tests need root and iproute2): ${detail}`, { cause: err });
  }
  return {
    name,
    links: made,
    wrap: ['ip', 'netns', 'exec', name],
    cut: (link) => ip('link', 'set', (made[link] as { device: string }).device, 'down'),
    mend: (link) => ip('link', 'set', (made[link] as { device: string }).device, 'up'),
    remove,
  };
}
