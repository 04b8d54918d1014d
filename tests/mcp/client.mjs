// The MCP test client of tests/e2e/test_740_mcp.py, written on the official
// TypeScript SDK: connects to pvelab over stdio or Streamable HTTP, runs one
// scenario, prints one JSON report line on stdout (and "READY <what>" lines
// where the test must act), exits 0 unless the SDK itself failed.
//   node client.mjs '{"scenario":"read","stdio":["pvelab","mcp"],"env":{...}}'
//   node client.mjs '{"scenario":"read","url":"http://127.0.0.1:PORT/mcp","token":"pvl_..."}'
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
	ResourceUpdatedNotificationSchema,
	ProgressNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';
import Ajv from 'ajv';
import readline from 'node:readline';

const spec = JSON.parse(process.argv[2]);
const report = { ok: true, steps: [] };
const ajv = new Ajv({ strict: false, allErrors: true });

function note(step, data) {
	report.steps.push({ step, ...data });
}

async function connect() {
	const client = new Client({ name: 'pvelab-e2e', version: '1.0.0' });
	let transport;
	if (spec.url) {
		transport = new StreamableHTTPClientTransport(new URL(spec.url), {
			requestInit: { headers: { Authorization: `Bearer ${spec.token}` } },
		});
	} else {
		transport = new StdioClientTransport({
			command: spec.stdio[0],
			args: spec.stdio.slice(1),
			env: { ...process.env, ...(spec.env || {}) },
			stderr: 'pipe',
		});
		// the server's stderr, for the test to look for sanitizer reports
		report.stderr = '';
		transport.stderr?.on('data', (d) => {
			if (report.stderr.length < 65536) report.stderr += d.toString();
		});
	}
	await client.connect(transport);
	return { client, transport };
}

// Each read tool with the arguments it needs; guest names come from the test.
function readCalls(g) {
	return [
		['status', {}],
		['list', {}],
		['list', { type: 'lxc', sort: 'name' }],
		['describe', { guest: g }],
		['history', { guest: g }],
		['snapshots', { guest: g }],
		['backups', {}],
		['doctor', {}],
		['validate', {}],
		['plan', {}],
		['version', {}],
		['config-schema', {}],
		['discovered', {}],
	];
}

async function callChecked(client, tools, name, args) {
	// the SDK validates structuredContent against the outputSchema it listed
	// (and throws when it does not match); checked here once more with ajv
	const r = await client.callTool({ name, arguments: args });
	const tool = tools.find((t) => t.name === name);
	let valid = null;
	if (tool && tool.outputSchema && !r.isError) {
		const v = ajv.compile(tool.outputSchema);
		valid = v(r.structuredContent);
		if (!valid) note('invalid', { name, errors: v.errors });
	}
	return { r, valid };
}

async function read() {
	const { client } = await connect();
	note('version', { protocol: client.transport?.protocolVersion ?? null, server: client.getServerVersion() });
	const { tools } = await client.listTools();
	note('tools', { names: tools.map((t) => t.name), tools });
	for (const t of tools) {
		// every schema must compile
		ajv.compile(t.inputSchema);
		if (t.outputSchema) ajv.compile(t.outputSchema);
	}
	for (const [name, args] of readCalls(spec.guest)) {
		const { r, valid } = await callChecked(client, tools, name, args);
		note('call', { name, args, isError: !!r.isError, valid, structured: r.structuredContent ?? null,
			text: r.content?.[0]?.text ?? null });
	}
	const res = await client.listResources();
	note('resources', { uris: res.resources.map((x) => x.uri), next: res.nextCursor ?? null });
	const tpl = await client.listResourceTemplates();
	note('templates', { list: tpl.resourceTemplates });
	const guest = await client.readResource({ uri: `pvelab://guest/${spec.guest}` });
	note('resource', { uri: guest.contents[0].uri, json: JSON.parse(guest.contents[0].text) });
	const cluster = await client.readResource({ uri: 'pvelab://cluster' });
	note('cluster', { json: JSON.parse(cluster.contents[0].text) });
	try {
		await client.readResource({ uri: 'pvelab://guest/no-such-guest' });
		note('missing', { error: null });
	} catch (e) {
		note('missing', { error: e.code ?? String(e) });
	}
	const prompts = await client.listPrompts();
	note('prompts', { names: prompts.prompts.map((p) => p.name) });
	for (const [name, args] of [['what-changed', {}], ['why-not-running', { guest: spec.guest }],
		['plan-change', { change: 'give web 4 GiB of memory' }]]) {
		const p = await client.getPrompt({ name, arguments: args });
		note('prompt', { name, text: p.messages[0].content.text });
	}
	// a write tool, called directly although not listed
	const w = await client.callTool({ name: 'stop', arguments: { guests: [spec.guest] } });
	note('write', { isError: !!w.isError, text: w.content?.[0]?.text });
	await client.close();
}

// Subscribe to a guest, say READY, then read it again on each update until
// its status is spec.want (the test changes it through the simulator).
async function subscribe() {
	const { client } = await connect();
	const uri = `pvelab://guest/${spec.guest}`;
	const read = async () => JSON.parse((await client.readResource({ uri })).contents[0].text);
	let updates = 0;
	const reached = new Promise((resolve) => {
		client.setNotificationHandler(ResourceUpdatedNotificationSchema, async (n) => {
			if (n.params.uri !== uri) return;
			updates++;
			const now = await read();
			if (now.status === spec.want) resolve(now.status);
		});
	});
	const before = await read();
	await client.subscribeResource({ uri });
	console.log('READY subscribed');
	const timeout = new Promise((resolve) => setTimeout(() => resolve(null), spec.deadline_ms || 30000));
	const after = await Promise.race([reached, timeout]);
	note('updated', { uri, updates, before: before.status ?? null, after });
	await client.close();
}

async function write() {
	const { client } = await connect();
	const { tools } = await client.listTools();
	note('tools', { names: tools.map((t) => t.name),
		annotations: Object.fromEntries(tools.map((t) => [t.name, t.annotations])) });
	const progress = [];
	const plan = await callChecked(client, tools, 'plan', {});
	const planId = plan.r.structuredContent?.plan_id;
	note('plan', { isError: !!plan.r.isError, valid: plan.valid, plan_id: planId,
		summary: plan.r.structuredContent?.summary });
	const stalePlan = await client.callTool({ name: 'plan', arguments: {} });
	const latest = await client.readResource({ uri: 'pvelab://plan/latest' });
	note('latest', { plan_id: JSON.parse(latest.contents[0].text).plan_id });
	const noId = await client.callTool({ name: 'apply', arguments: { plan_id: 'not-a-plan' } });
	note('apply-unknown', { isError: !!noId.isError, text: noId.content?.[0]?.text });
	const applied = await client.callTool({ name: 'apply', arguments: { plan_id: planId } }, undefined, {
		onprogress: (p) => progress.push(p),
		timeout: 120000,
	});
	note('apply', { isError: !!applied.isError, structured: applied.structuredContent ?? null,
		text: applied.content?.[0]?.text, progress: progress.length });
	const again = await client.callTool({ name: 'apply', arguments: { plan_id: planId } });
	note('apply-again', { isError: !!again.isError, text: again.content?.[0]?.text });
	const stale = await client.callTool({ name: 'apply',
		arguments: { plan_id: stalePlan.structuredContent.plan_id } });
	note('apply-stale', { isError: !!stale.isError, text: stale.content?.[0]?.text });
	const d1 = await client.callTool({ name: 'destroy', arguments: { guests: [spec.guest], confirm: 'yes' } });
	note('destroy-bad-confirm', { isError: !!d1.isError, text: d1.content?.[0]?.text });
	let d2;
	try {
		d2 = await client.callTool({ name: 'destroy', arguments: { guests: [spec.guest] } });
		note('destroy-no-confirm', { isError: !!d2.isError, text: d2.content?.[0]?.text });
	} catch (e) {
		note('destroy-no-confirm', { isError: true, text: String(e) });
	}
	await client.close();
}

// A call cancelled by the client (the SDK sends notifications/cancelled on abort).
async function cancel() {
	const { client } = await connect();
	await client.listTools();
	const ac = new AbortController();
	const started = Date.now();
	const p = client.callTool({ name: spec.tool, arguments: spec.args }, undefined, { signal: ac.signal })
		.then(() => 'answered', (e) => `rejected: ${e.message ?? e}`);
	setTimeout(() => ac.abort('the test cancels'), spec.after_ms ?? 200);
	note('cancel', { outcome: await p, ms: Date.now() - started });
	const ping = await client.ping();
	note('after', { ping: ping !== undefined });
	await client.close();
}

// plan, then apply its plan_id with a progressToken, and cancel the apply
// once its first step is reported.
async function cancelApply() {
	const { client } = await connect();
	await client.listTools();
	const plan = await client.callTool({ name: 'plan', arguments: {} });
	const planId = plan.structuredContent?.plan_id;
	const ac = new AbortController();
	const progress = [];
	const outcome = await client.callTool({ name: 'apply', arguments: { plan_id: planId } }, undefined, {
		signal: ac.signal,
		timeout: 120000,
		onprogress: (p) => {
			progress.push(p);
			if (progress.length === 2) ac.abort('the test cancels the apply');
		},
	}).then(() => 'answered', (e) => `rejected: ${e.message ?? e}`);
	note('cancel-apply', { plan_id: planId, outcome, progress });
	note('after', { ping: (await client.ping()) !== undefined });
	await client.close();
}

// The tools a session is offered (the role decides).
async function tools() {
	const { client } = await connect();
	const { tools: list } = await client.listTools();
	note('tools', { names: list.map((t) => t.name) });
	await client.close();
}

// Plan, apply and plan again of a config with stacks (test_762): what each
// shows, and the apply's progress messages (compose's output among them).
async function stacks() {
	const { client } = await connect();
	const plan = await client.callTool({ name: 'plan', arguments: {} });
	note('plan', { isError: !!plan.isError, structured: plan.structuredContent ?? null });
	const progress = [];
	const applied = await client.callTool({ name: 'apply',
		arguments: { plan_id: plan.structuredContent?.plan_id } }, undefined, {
		onprogress: (p) => progress.push(p.message),
		timeout: 120000,
	});
	note('apply', { isError: !!applied.isError, structured: applied.structuredContent ?? null,
		text: applied.content?.[0]?.text, progress });
	const again = await client.callTool({ name: 'plan', arguments: {} });
	note('replan', { isError: !!again.isError, structured: again.structuredContent ?? null });
	await client.close();
}

const scenarios = { read, subscribe, write, cancel, cancelApply, tools, stacks };
try {
	await scenarios[spec.scenario]();
} catch (e) {
	report.ok = false;
	report.error = String(e?.stack ?? e);
}
// let the server's last words (a sanitizer's report at exit) arrive
await new Promise((resolve) => setTimeout(resolve, 300));
// exit once the report is written (a pipe takes 64 KiB at a time)
process.stdout.write(JSON.stringify(report) + '\n', () => process.exit(0));
