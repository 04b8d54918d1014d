// Validates an OpenAPI document (a file, JSON) with @apidevtools/swagger-parser:
// the OpenAPI 3.1 schema, then its own rules ($refs resolve, unique operation
// ids, path parameters declared). Prints "ok" or the validator's message, exit 1.
import { readFileSync } from "node:fs";
import SwaggerParser from "@apidevtools/swagger-parser";

const doc = JSON.parse(readFileSync(process.argv[2], "utf8"));
try {
	await SwaggerParser.validate(doc);
	console.log("ok");
} catch (err) {
	console.log(err.message);
	process.exit(1);
}
