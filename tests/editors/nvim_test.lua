-- tests/editors/nvim_test.lua — Neovim (0.7+) headless as fimd's client: attaches fimd to a C
-- buffer, types "sum" through the buffer API (incremental didChange), then checks that
-- textDocument/inlineCompletion and textDocument/completion return the text `fimd complete` gives
-- for the same buffer and cursor. Env: FIMD_BIN, FIMD_MODEL, FIMD_FILE, FIMD_EXPECT.
-- Run: nvim --headless --clean -u NONE -c "luafile tests/editors/nvim_test.lua"
local pass, fail = 0, 0
local function check(ok, what)
  if ok then pass = pass + 1 else fail = fail + 1; io.stdout:write('FAIL nvim: ' .. what .. '\n') end
end
local function finish()
  io.stdout:write(string.format('%d passed, %d failed\n', pass, fail))
  vim.cmd(fail == 0 and 'qall!' or 'cquit 1')
end

local expected = table.concat(vim.fn.readfile(os.getenv('FIMD_EXPECT'), 'b'), '\n')
vim.cmd('edit ' .. vim.fn.fnameescape(os.getenv('FIMD_FILE')))
local buf = vim.api.nvim_get_current_buf()
local ready = false
local id = vim.lsp.start_client({
  name = 'fimd',
  cmd = { os.getenv('FIMD_BIN'), '--model', os.getenv('FIMD_MODEL') },
  root_dir = vim.fn.getcwd(),
  on_init = function() ready = true end,
})
vim.lsp.buf_attach_client(buf, id)
check(vim.wait(10000, function() return ready end, 20), 'client initialized')
local client = vim.lsp.get_client_by_id(id)

-- (request_sync waits itself, so it must not run inside vim.wait's condition)
local loaded = false
for _ = 1, 400 do
  local r = client.request_sync('fimd/status', {}, 2000, buf)
  loaded = r and r.result and r.result.state == 'ready'
  if loaded then break end
  vim.wait(50)
end
check(loaded, 'model ready')

vim.api.nvim_buf_set_text(buf, 12, 8, 12, 8, { 'sum' }) -- typing, sent as an incremental change
local params = {
  textDocument = { uri = vim.uri_from_bufnr(buf) },
  position = { line = 12, character = 11 },
  context = { triggerKind = 1 },
}
local r = client.request_sync('textDocument/inlineCompletion', params, 20000, buf)
local items = r and r.result and r.result.items
check(items ~= nil, 'inlineCompletion answered')
local got = (items and items[1]) and items[1].insertText or ''
check(got == expected, 'inline text equals fimd complete: [' .. got .. '] vs [' .. expected .. ']')

local c = client.request_sync('textDocument/completion', params, 20000, buf)
local list = c and c.result
check(list ~= nil and list.isIncomplete == true, 'completion list is incomplete')
local newText = (list and list.items[1]) and list.items[1].textEdit.newText or ''
check(newText == expected, 'completion textEdit equals fimd complete')

vim.lsp.stop_client(id)
check(vim.wait(5000, function() return vim.lsp.get_client_by_id(id) == nil end, 20), 'client stopped')
finish()
