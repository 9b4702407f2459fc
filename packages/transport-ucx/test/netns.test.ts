/** The lab itself: hosts reach each other over the bridge, a pulled link cuts one off, nothing stays. */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LAB_PORT, NetnsLab, removeStaleLabs } from './netns.js';

const SERVER = `require('node:net').createServer((s) => s.end(process.env.HOST_NAME)).listen(${LAB_PORT}, process.argv[1])`;
const CLIENT = `const s = require('node:net').connect(${LAB_PORT}, process.argv[1]); let got = '';
s.setTimeout(1500, () => { console.log('timeout'); process.exit(0); });
s.on('data', (d) => { got += d; }); s.on('end', () => { console.log(got); process.exit(0); });
s.on('error', (e) => { console.log(e.code); process.exit(0); });`;

describe('netns lab', () => {
  let lab: NetnsLab;
  beforeAll(() => {
    lab = NetnsLab.create(3);
  });
  afterAll(() => lab?.destroy());

  it('gives every host loopback, its own address on eth0 and its own dirs', () => {
    const seen = new Set<string>();
    for (const h of lab.hosts) {
      expect(lab.exec(h.index, 'ip', ['-o', 'link', 'show', 'lo'])).toMatch(/[<,]UP[,>]/);
      expect(lab.exec(h.index, 'ip', ['-o', '-4', 'addr', 'show', 'dev', 'eth0'])).toContain(
        `${h.address}/24`,
      );
      expect(h.address).toMatch(/^10\.213\.\d+\.\d+$/);
      for (const d of [h.staging, h.target]) expect(existsSync(d)).toBe(true);
      seen.add(h.nodeId);
    }
    expect(seen.size).toBe(3);
  });

  it('connects hosts over the bridge; a link taken down cuts that host off until it is back', async () => {
    const server = lab.spawn(0, process.execPath, ['-e', SERVER, lab.host(0).address], {
      HOST_NAME: 'host0',
    });
    const ask = (i: number) => lab.exec(i, process.execPath, ['-e', CLIENT, lab.host(0).address]).trim();
    let first = '';
    for (let attempt = 0; attempt < 50 && first !== 'host0'; attempt++) {
      first = ask(1); // the server may not be listening yet
      if (first !== 'host0') await new Promise((r) => setTimeout(r, 100));
    }
    expect(first).toBe('host0');
    expect(ask(2)).toBe('host0');
    lab.linkDown(2);
    expect(ask(2)).not.toBe('host0');
    expect(ask(1)).toBe('host0');
    await lab.linkUp(2);
    let back = '';
    for (let attempt = 0; attempt < 50 && back !== 'host0'; attempt++) back = ask(2); // carrier returns
    expect(back).toBe('host0');
    server.child.kill();
    await server.done;
  });

  it('removes its namespaces and dirs, and a later run removes those of a run that was killed', async () => {
    const other = NetnsLab.create(2);
    const names = other.namespaces();
    expect(names).toHaveLength(3);
    await other.destroy();
    expect(other.namespaces()).toEqual([]);
    for (const h of other.hosts) expect(existsSync(h.dir)).toBe(false);

    // A lab whose creator was SIGKILLed: its pid is gone, its namespace is not.
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {
      encoding: 'utf8',
    }).stdout;
    const orphan = `hwlab${dead}-kill-h0`;
    execFileSync('ip', ['netns', 'add', orphan]);
    expect(removeStaleLabs()).toContain(orphan);
    expect(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })).not.toContain(orphan);
    // A live lab (this process's) is never taken for a stale one.
    expect(lab.namespaces()).toHaveLength(4);
  });
});
