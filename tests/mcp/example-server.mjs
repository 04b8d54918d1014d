// The floor bench/mcp.sh measures pvelab against: the official SDK's own
// McpServer answering one trivial tool (echo), over stdio or, with
// `http PORT`, Streamable HTTP on 127.0.0.1 (a session per client, as the
// SDK's example does). Nothing of pvelab runs here.
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { z } from 'zod';

function server() {
	const s = new McpServer({ name: 'sdk-example', version: '1.0.0' });
	s.registerTool('echo', { description: 'echo a message', inputSchema: { message: z.string().optional() } },
		async ({ message }) => ({ content: [{ type: 'text', text: message ?? 'ok' }] }));
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
