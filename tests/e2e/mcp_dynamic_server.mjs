// An MCP server whose tools change while it runs, built on the official TypeScript SDK (its McpServer
// sends notifications/tools/list_changed whenever a tool is added or removed after connecting):
// "add_tool" {name} adds a tool that answers "I am <name>", "remove_tool" {name} removes it.
// For tests/test_mcp.py; run as: node mcp_dynamic_server.mjs
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { z } from "zod";

const server = new McpServer({ name: "dynamic", version: "1.0.0" });
const added = new Map();

server.registerTool("add_tool", { description: "Adds a tool named `name`", inputSchema: { name: z.string() } },
  async ({ name }) => {
    if (!added.has(name)) {
      added.set(name, server.registerTool(name, { description: `The tool ${name}` },
        async () => ({ content: [{ type: "text", text: `I am ${name}` }] })));
    }
    return { content: [{ type: "text", text: `added ${name}` }] };
  });
server.registerTool("remove_tool", { description: "Removes the tool named `name`", inputSchema: { name: z.string() } },
  async ({ name }) => {
    added.get(name)?.remove();
    added.delete(name);
    return { content: [{ type: "text", text: `removed ${name}` }] };
  });

await server.connect(new StdioServerTransport());
