#!/usr/bin/env node
// The CLI is TypeScript run by Node 24's type stripping; this shim gives npm a `bin`.
import "../src/cli/main.ts";
