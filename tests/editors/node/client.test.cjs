// tests/editors/node/client.test.cjs — fimd driven by vscode-languageserver-protocol 3.18, the
// library under VS Code's client, with the requests VS Code sends: initialize with the
// inlineCompletion capability, didOpen, one didChange per keystroke, inlineCompletion with
// triggerKind 2 (automatic) and 1 (invoked), completion, shutdown, exit.
// Env: FIMD_BIN, FIMD_MODEL, FIMD_FILE (the buffer before typing), FIMD_EXPECT (fimd complete's
// text for the buffer after typing "sum" at line 12, character 8; cursor at 12:11).
'use strict';
const { test } = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const { spawn } = require('node:child_process');
const p = require('vscode-languageserver-protocol/node');

test('fimd answers the requests VS Code sends', async () => {
    const server = spawn(process.env.FIMD_BIN, ['--model', process.env.FIMD_MODEL], { stdio: ['pipe', 'pipe', 'inherit'] });
    const exited = new Promise((resolve) => server.on('exit', (code) => resolve(code)));
    const conn = p.createProtocolConnection(new p.StreamMessageReader(server.stdout), new p.StreamMessageWriter(server.stdin));
    conn.onRequest('window/workDoneProgress/create', () => null);
    conn.listen();

    const init = await conn.sendRequest(p.InitializeRequest.type, {
        processId: process.pid,
        rootUri: null,
        capabilities: {
            general: { positionEncodings: ['utf-16'] },
            window: { workDoneProgress: true },
            textDocument: {
                synchronization: { dynamicRegistration: true, didSave: true },
                completion: { completionItem: { snippetSupport: true } },
                inlineCompletion: { dynamicRegistration: true },
            },
        },
    });
    assert.ok(init.capabilities.inlineCompletionProvider, 'inlineCompletionProvider');
    assert.ok(init.capabilities.completionProvider, 'completionProvider');
    assert.strictEqual(init.capabilities.textDocumentSync.change, 2, 'incremental sync');
    conn.sendNotification(p.InitializedNotification.type, {});

    for (let i = 0; i < 500; i++) {
        const st = await conn.sendRequest('fimd/status', {});
        if (st.state === 'ready') break;
        assert.notStrictEqual(st.state, 'failed', st.error);
        await new Promise((r) => setTimeout(r, 20));
    }

    const uri = 'file://' + process.env.FIMD_FILE;
    const text = fs.readFileSync(process.env.FIMD_FILE, 'utf8');
    conn.sendNotification(p.DidOpenTextDocumentNotification.type, { textDocument: { uri, languageId: 'c', version: 1, text } });
    let version = 1;
    for (const [k, ch] of ['s', 'u', 'm'].entries()) { // one didChange per keystroke, as VS Code sends
        conn.sendNotification(p.DidChangeTextDocumentNotification.type, {
            textDocument: { uri, version: ++version },
            contentChanges: [{ range: { start: { line: 12, character: 8 + k }, end: { line: 12, character: 8 + k } }, rangeLength: 0, text: ch }],
        });
    }
    const expected = fs.readFileSync(process.env.FIMD_EXPECT, 'utf8');
    const position = { line: 12, character: 11 };
    for (const triggerKind of [2, 1]) {
        const r = await conn.sendRequest(p.InlineCompletionRequest.type, {
            textDocument: { uri }, position, context: { triggerKind, selectedCompletionInfo: undefined },
        });
        const items = Array.isArray(r) ? r : r.items;
        assert.strictEqual(items.length ? items[0].insertText : '', expected, `inline completion, triggerKind ${triggerKind}`);
        if (items.length) assert.deepStrictEqual(items[0].range, { start: position, end: position });
    }
    // what VS Code's client does when the user accepts: run the item's command on the server
    const shownItems = await conn.sendRequest(p.InlineCompletionRequest.type, { textDocument: { uri }, position, context: { triggerKind: 1 } });
    const item = (Array.isArray(shownItems) ? shownItems : shownItems.items)[0];
    if (item) {
        assert.strictEqual(item.command.command, 'fimd.accept');
        await conn.sendRequest(p.ExecuteCommandRequest.type, { command: item.command.command, arguments: item.command.arguments });
        const st = await conn.sendRequest('fimd/status', {});
        assert.ok(st.shown >= 3 && st.accepted === 1, `shown ${st.shown}, accepted ${st.accepted}`);
    }
    const c = await conn.sendRequest(p.CompletionRequest.type, { textDocument: { uri }, position, context: { triggerKind: 1 } });
    assert.strictEqual(c.isIncomplete, true);
    if (expected.length) assert.strictEqual(c.items[0].textEdit.newText, expected, 'completion textEdit');

    await conn.sendRequest(p.ShutdownRequest.type);
    conn.sendNotification(p.ExitNotification.type);
    assert.strictEqual(await exited, 0, 'exit status after shutdown');
    conn.dispose();
});
