// editors/vscode/extension.js — starts fimd as a language server for every file. vscode-languageclient
// 11 wires inline completions itself when the server advertises them; this file adds the settings and
// a status bar item fed by fimd/status (loading, ready, last latency).
'use strict';
const vscode = require('vscode');
const { LanguageClient, TransportKind } = require('vscode-languageclient/node');

let client, status, timer;

function settings() {
    const c = vscode.workspace.getConfiguration('fimd');
    return {
        serverPath: c.get('serverPath') || 'fimd',
        options: {
            model: c.get('model') || undefined,
            threads: c.get('threads'),
            maxTokens: c.get('maxTokens'),
            prefixTokens: c.get('prefixTokens'),
            suffixTokens: c.get('suffixTokens'),
            relatedTokens: c.get('relatedTokens'),
            cacheMegabytes: c.get('cacheMegabytes'),
            backend: c.get('backend') || undefined,
        },
    };
}

async function refreshStatus() {
    if (!client || !client.isRunning()) return;
    try {
        const s = await client.sendRequest('fimd/status');
        const last = s.last ? ` ${Math.round(s.last.promptMs + s.last.generationMs)} ms` : '';
        status.text = s.state === 'ready' ? `$(sparkle) fimd${last}` : `$(sync~spin) fimd: ${s.state}`;
        status.tooltip = `${s.model}\n${s.description || s.error || ''}\ncache ${Math.round(s.cacheBytes / 1048576)} MiB, ${s.openDocuments} open files`;
    } catch (e) {
        status.text = '$(warning) fimd';
        status.tooltip = String(e);
    }
}

async function activate(context) {
    const s = settings();
    const server = { command: s.serverPath, args: s.options.model ? ['--model', s.options.model] : [], transport: TransportKind.stdio };
    client = new LanguageClient('fimd', 'fimd', { run: server, debug: server }, {
        documentSelector: [{ scheme: 'file' }, { scheme: 'untitled' }],
        initializationOptions: s.options,
        synchronize: { configurationSection: 'fimd' },
    });
    status = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Right, 100);
    status.text = '$(sync~spin) fimd';
    status.show();
    context.subscriptions.push(status);
    await client.start();
    timer = setInterval(refreshStatus, 2000);
    context.subscriptions.push({ dispose: () => clearInterval(timer) });
}

function deactivate() {
    return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
