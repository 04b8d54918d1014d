// The client of bench/mcp.sh, on the official SDK: connect (stdio or HTTP),
// time initialize through the tools/list answer, then N tools/call round trips
// one after another; prints one JSON line.
//   node bench.mjs '{"stdio":[...]|"url":...,"token":...,"tool":"status","args":{},"n":2000}'
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const spec = JSON.parse(process.argv[2]);
const client = new Client({ name: 'bench', version: '1.0.0' });
const transport = spec.url ?
	new StreamableHTTPClientTransport(new URL(spec.url), spec.token ?
		{ requestInit: { headers: { Authorization: `Bearer ${spec.token}` } } } : {}) :
	new StdioClientTransport({ command: spec.stdio[0], args: spec.stdio.slice(1), env: process.env, stderr: 'ignore' });
const t0 = process.hrtime.bigint();
await client.connect(transport);
const { tools } = await client.listTools();
const t1 = process.hrtime.bigint();
if (!tools.some((t) => t.name === spec.tool)) throw new Error(`no tool ${spec.tool}`);
for (let i = 0; i < 20; i++) await client.callTool({ name: spec.tool, arguments: spec.args });
const t2 = process.hrtime.bigint();
let bytes = 0;
for (let i = 0; i < spec.n; i++) {
	const r = await client.callTool({ name: spec.tool, arguments: spec.args });
	if (r.isError) throw new Error(JSON.stringify(r.content));
	bytes = r.content[0].text.length;
}
const t3 = process.hrtime.bigint();
const s = Number(t3 - t2) / 1e9;
process.stdout.write(JSON.stringify({ init_to_list_ms: Number(t1 - t0) / 1e6, calls: spec.n, seconds: s,
	per_second: spec.n / s, answer_bytes: bytes }) + '\n', () => process.exit(0));
