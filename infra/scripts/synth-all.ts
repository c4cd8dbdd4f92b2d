// Synthesizes every variant the project supports into <outdir>/<variant>/ and writes
// <outdir>/templates.txt (one template path per line) for cfn-lint and the policy rules.
// Each variant uses the functions in ../target/lambda when they are built for its architecture,
// else placeholder bootstrap files (test/support.ts): it passes whatever target/lambda holds.
// Usage: tsx scripts/synth-all.ts [outdir]   (default: cdk.out/all)
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildApp } from '../lib/app';
import { Architecture } from '../lib/config';
import { functionsDirForSynth, offlineContext } from '../test/support';

export const VARIANTS: Record<string, Record<string, string>> = {
  'single-kubeadm': { controlPlaneMode: 'single', installer: 'kubeadm' },
  'ha-kubeadm': { controlPlaneMode: 'ha', installer: 'kubeadm' },
  'single-kurl': { controlPlaneMode: 'single', installer: 'kurl' },
  'ha-kurl': { controlPlaneMode: 'ha', installer: 'kurl' },
  'per-instance': { controlPlaneMode: 'single', installer: 'kubeadm', joinMode: 'per-instance' },
  'arm64-options': {
    controlPlaneMode: 'ha',
    installer: 'kubeadm',
    nodeArchitecture: 'arm64',
    architecture: 'arm64',
    clusterName: 'prod.eu_1',
    groupNamePrefix: 'k8s-',
    parameterPrefix: '/platform/joinkeeper',
    clusterKmsKey: 'true',
    workerImdsHopLimit: '2',
    alarmEmail: 'ops@example.com',
    warmPoolMinSize: '1',
    warmPoolState: 'Running',
    warmPoolReuseOnScaleIn: 'true',
  },
};

const out = path.resolve(process.argv[2] ?? 'cdk.out/all');
fs.rmSync(out, { recursive: true, force: true });
fs.mkdirSync(out, { recursive: true });
const templates: string[] = [];
const seen = new Set<string>();
for (const [name, ctx] of Object.entries(VARIANTS)) {
  const outdir = path.join(out, name);
  const fd = functionsDirForSynth(ctx.architecture as Architecture | undefined);
  const code = fd.placeholder ? `placeholder bootstrap files (${fd.why})` : `functions from ${fd.dir}`;
  const { app } = buildApp({ outdir, context: offlineContext(ctx) });
  const assembly = app.synth();
  for (const stack of assembly.stacks) {
    for (const m of Object.values(stack.messages ?? [])) {
      if (m.level === 'warning' && !seen.has(m.entry.data as string)) {
        seen.add(m.entry.data as string);
        console.log(`synth warning (${stack.stackName}): ${m.entry.data}`);
      }
      if (m.level === 'error') throw new Error(`synth error (${stack.stackName}): ${m.entry.data}`);
    }
    templates.push(path.join(outdir, stack.templateFile));
  }
  console.log(`synth ${name}: ${assembly.stacks.map((s) => s.stackName).join(', ')}; ${code}`);
}
fs.writeFileSync(path.join(out, 'templates.txt'), templates.join('\n') + '\n');
