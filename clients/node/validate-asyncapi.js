#!/usr/bin/env node
// Validates an AsyncAPI document with the maintained parser (@asyncapi/parser),
// and its JSON Schema 2020-12 payloads with Ajv's 2020-12 validator.
//
//   node validate-asyncapi.js ../../asyncapi.yaml
//
// Why a schema parser is registered here: for AsyncAPI 3 documents, @asyncapi/parser
// 3.6 checks no payload whose schemaFormat is not its own (draft-07 based): tried,
// it accepted `maxLength: "three"` under version=2020-12 without a word. It does
// hand every such payload, $refs resolved, to the schema parser registered for the
// format, so this one compiles each with Ajv's 2020-12 validator (the JSON Schema
// library the parser is built on), in strict mode: unknown keywords are errors too.
//
// Prints one JSON line: {"valid": bool, "channels", "operations", "diagnostics"};
// exits 1 when anything at severity error or warning was found. Reads local files only.
'use strict';

const path = require('path');
const { Parser, fromFile } = require('@asyncapi/parser');
const Ajv2020 = require('ajv/dist/2020').default;

const SEVERITY = ['error', 'warning', 'info', 'hint'];

function jsonSchema2020(problems) {
  return {
    getMimeTypes: () => ['application/schema+json;version=2020-12', 'application/schema+yaml;version=2020-12'],
    async validate() {
      return []; // never called for AsyncAPI 3 documents (see above): parse() checks
    },
    async parse(input) {
      try {
        new Ajv2020({ strict: true, allErrors: true }).compile(input.data);
      } catch (err) {
        problems.push({ severity: 'error', code: 'json-schema-2020-12', message: err.message, path: input.path.join('/') });
      }
      return input.data;
    },
  };
}

async function main(file) {
  const problems = [];
  const parser = new Parser();
  parser.registerSchemaParser(jsonSchema2020(problems));
  const { document, diagnostics } = await fromFile(parser, path.resolve(file)).parse();
  const found = diagnostics.map((d) => ({
    severity: SEVERITY[d.severity] || String(d.severity),
    code: d.code,
    message: d.message,
    path: d.path.join('/'),
  })).concat(problems);
  const failing = found.filter((d) => d.severity === 'error' || d.severity === 'warning');
  const valid = document !== undefined && failing.length === 0;
  const summary = valid
    ? {
        channels: document.channels().all().map((c) => c.address()),
        operations: document.operations().all().map((o) => o.id()),
      }
    : {};
  console.log(JSON.stringify({ valid, ...summary, diagnostics: found }));
  return valid ? 0 : 1;
}

main(process.argv[2] || path.join(__dirname, '..', '..', 'asyncapi.yaml')).then(
  (code) => process.exit(code),
  (err) => {
    console.log(JSON.stringify({ valid: false, diagnostics: [{ severity: 'error', message: String(err.stack || err) }] }));
    process.exit(1);
  },
);
