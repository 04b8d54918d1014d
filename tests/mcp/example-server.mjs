// The floor bench/mcp.sh measures pvelab against: the official SDK's own
// McpServer answering one trivial tool (echo), over stdio or, with
// `http PORT`, Streamable HTTP on 127.0.0.1 (a session per client, as the
// SDK's example does). Nothing of pvelab runs here.
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { z } from 'zod';

const answer = process.env.PEER_ANSWER ? JSON.parse(readFileSync(process.env.PEER_ANSWER, 'utf8')) : null;
const answerText = answer && JSON.stringify(answer);

function server() {
	const s = new McpServer({ name: 'sdk-example', version: '1.0.0' });
	s.registerTool('echo', { description: 'echo a message', inputSchema: { message: z.string().optional() } },
		async ({ message }) => ({ content: [{ type: 'text', text: message ?? 'ok' }] }));
	if (answer)
		s.registerTool('status', {
			description: 'the answer of PEER_ANSWER',
			outputSchema: { nodes: z.array(z.object({ node: z.string(), status: z.string() }).passthrough()),
				guests: z.object({ total: z.number().int() }).passthrough(),
				last_sync: z.object({}).passthrough().nullable().optional() },
		}, async () => ({ content: [{ type: 'text', text: answerText }], structuredContent: answer }));
	return s;
}

if (process.argv[2] === 'http') {
	const transports = new Map();
	const httpServer = http.createServer(async (req, res) => {
		const sid = req.headers['mcp-session-id'];
		let t = sid ? transports.get(sid) : undefined;
		if (!t) {
			t = new StreamableHTTPServerTransport({
				sessionIdGenerator: () => randomUUID(),
				onsessioninitialized: (id) => transports.set(id, t),
			});
			await server().connect(t);
		}
		await t.handleRequest(req, res);
	});
	httpServer.listen(Number(process.argv[3]), '127.0.0.1', () => console.log('listening'));
} else {
	await server().connect(new StdioServerTransport());
}
