#!/usr/bin/env node
// The PowerShell syntax gate: parses each file named on the command line (or every *.ps1 in a
// folder named there) with the tree-sitter PowerShell grammar and fails on any ERROR or MISSING
// node, printing file:line:column and the text around it.
//
// Why this tool: no PowerShell can be installed on the project's machines, so the scripts hive
// sends are checked by a real PowerShell grammar instead. The grammar ships as a .wasm in the npm
// package `tree-sitter-powershell` (ABI 15), loaded with `web-tree-sitter` of the same ABI; the
// versions are pinned in package.json beside this file, installed by integration/lib.sh
// (setup_syntax_gate). Known grammar gap: a one-line `switch` needs `;` between its clauses.
//
// Exit codes: 0 every file parses; 1 a file has a syntax error; 2 usage or setup error.
'use strict';
// Baseline-compile the grammar's WebAssembly only: the optimising compiler spends some 15 s of CPU
// on it before the first parse, the baseline one a fraction of a second, and a parse takes
// milliseconds either way.
require('v8').setFlagsFromString('--liftoff-only');
const fs = require('fs');
const path = require('path');

function files(args) {
  const out = [];
  for (const a of args) {
    const st = fs.statSync(a);
    if (st.isDirectory()) {
      for (const f of fs.readdirSync(a).sort()) {
        if (f.toLowerCase().endsWith('.ps1')) out.push(path.join(a, f));
      }
    } else {
      out.push(a);
    }
  }
  return out;
}

function problems(node, out) {
  if (node.isError || node.type === 'ERROR') {
    out.push({ kind: 'ERROR', node });
  } else if (node.isMissing) {
    out.push({ kind: `MISSING ${node.type}`, node });
  }
  for (let i = 0; i < node.childCount; i++) problems(node.child(i), out);
  return out;
}

async function main() {
  const args = process.argv.slice(2);
  if (args.length === 0) {
    console.error('usage: check-powershell.cjs FILE.ps1|FOLDER...');
    return 2;
  }
  let Parser, Language;
  try {
    ({ Parser, Language } = require('web-tree-sitter'));
  } catch (e) {
    console.error(`web-tree-sitter is not installed next to this script (run integration/lib.sh setup_syntax_gate): ${e.message}`);
    return 2;
  }
  await Parser.init();
  const wasm = require.resolve('tree-sitter-powershell/tree-sitter-powershell.wasm');
  const language = await Language.load(wasm);
  const parser = new Parser();
  parser.setLanguage(language);
  const list = files(args);
  if (list.length === 0) {
    console.error(`no .ps1 files in ${args.join(' ')}`);
    return 2;
  }
  let bad = 0;
  for (const f of list) {
    const text = fs.readFileSync(f, 'utf8');
    const tree = parser.parse(text);
    const found = problems(tree.rootNode, []);
    if (found.length === 0) {
      console.log(`ok ${f}`);
      continue;
    }
    bad++;
    for (const { kind, node } of found.slice(0, 10)) {
      const p = node.startPosition;
      const line = text.split('\n')[p.row] || '';
      console.log(`${f}:${p.row + 1}:${p.column + 1}: ${kind}: ${line.trim().slice(0, 160)}`);
    }
    if (found.length > 10) console.log(`${f}: ${found.length - 10} more`);
  }
  console.log(`${list.length - bad} of ${list.length} scripts parse`);
  return bad === 0 ? 0 : 1;
}

main().then((code) => process.exit(code), (e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(2);
});
