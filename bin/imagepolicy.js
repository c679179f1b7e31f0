#!/usr/bin/env node
// The CLI is TypeScript run by Node 24's type stripping; this shim gives npm a `bin`.
import { run } from "../src/cli/main.ts";
import { processIo } from "../src/cli/io.ts";

process.exitCode = await run(process.argv.slice(2), processIo);
