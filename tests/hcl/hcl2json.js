// Reads HCL files named on the command line and prints each as JSON (one
// object: file name -> parsed body), for test_751_export_terraform.py.
const fs = require("fs");
const { parse } = require("@cdktf/hcl2json");

(async () => {
  const out = {};
  for (const f of process.argv.slice(2)) out[f] = await parse(f, fs.readFileSync(f, "utf8"));
  process.stdout.write(JSON.stringify(out));
})().catch((e) => {
  process.stderr.write(String(e && e.message ? e.message : e) + "\n");
  process.exit(1);
});
