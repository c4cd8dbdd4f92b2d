// The IAM check (iam-check/main.ts): recorded AWS calls, must-deny and must-allow cases and the
// README permission table, against the synthesized templates. Test-only: it uses the AGPL-3.0
// dev dependency @cloud-copilot/iam-simulate, which nothing deployed ever imports.
// Usage (from infra/): npx tsx scripts/iam-check.ts [--calls DIR] [--readme FILE] [--print-table]
import { main } from '../iam-check/main';

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e) => {
    console.error(`iam-check: ${(e as Error).stack ?? e}`);
    process.exit(2);
  },
);
