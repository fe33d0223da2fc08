-- tests/editors/nvim_plugin_test.lua — editors/nvim (the plugin) in headless Neovim: setup() attaches
-- fimd to the buffer, a request draws the ghost text as an extmark equal to `fimd complete`'s text,
-- and accepting inserts exactly that text at the cursor. Env: FIMD_BIN, FIMD_MODEL, FIMD_FILE,
-- FIMD_EXPECT, FIMD_REPO.
local pass, fail = 0, 0
local function check(ok, what)
  if ok then pass = pass + 1 else fail = fail + 1; io.stdout:write('FAIL nvim plugin: ' .. what .. '\n') end
end

vim.opt.runtimepath:append(os.getenv('FIMD_REPO') .. '/editors/nvim')
local expected = table.concat(vim.fn.readfile(os.getenv('FIMD_EXPECT'), 'b'), '\n')
vim.cmd('edit ' .. vim.fn.fnameescape(os.getenv('FIMD_FILE')))
local fimd = require('fimd')
fimd.setup({ cmd = { os.getenv('FIMD_BIN') }, model = os.getenv('FIMD_MODEL') })
check(vim.wait(10000, function() return fimd.client_id ~= nil and vim.lsp.get_client_by_id(fimd.client_id) ~= nil end, 20), 'client started')
local client = vim.lsp.get_client_by_id(fimd.client_id)
vim.wait(5000, function() return client.initialized end, 20)
local ready = false
for _ = 1, 400 do
  local r = client.request_sync('fimd/status', {}, 2000, 0)
  ready = r and r.result and r.result.state == 'ready'
  if ready then break end
  vim.wait(50)
end
check(ready, 'model ready')
check(vim.bo.omnifunc == 'v:lua.vim.lsp.omnifunc', 'omnifunc set')

vim.api.nvim_buf_set_text(0, 12, 8, 12, 8, { 'sum' })
local got
fimd.request(function(text) got = text end, { 12, 11 }) -- after "sum", where insert mode's cursor is
check(vim.wait(20000, function() return got ~= nil end, 20), 'ghost text arrived')
check(got == expected, 'ghost text equals fimd complete: [' .. tostring(got) .. ']')
local marks = vim.api.nvim_buf_get_extmarks(0, vim.api.nvim_create_namespace('fimd'), 0, -1, { details = true })
local first = vim.split(expected, '\n', { plain = true })[1]
check(#marks == 1 and marks[1][2] == 12 and marks[1][3] == 11 and marks[1][4].virt_text[1][1] == first,
  'extmark at the cursor shows the first line')
local before = table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), '\n')
check(fimd.accept(), 'accept inserts')
local after = table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), '\n')
local at = #table.concat(vim.api.nvim_buf_get_lines(0, 0, 12, false), '\n') + 1 + 11
check(after == before:sub(1, at) .. expected .. before:sub(at + 1), 'the buffer holds the completion at the cursor')
check(#vim.api.nvim_buf_get_extmarks(0, vim.api.nvim_create_namespace('fimd'), 0, -1, {}) == 0, 'ghost text gone after accept')
local accepted = 0
for _ = 1, 100 do
  local r = client.request_sync('fimd/status', {}, 2000, 0)
  accepted = r and r.result and r.result.accepted or 0
  if accepted == 1 then break end
  vim.wait(20)
end
check(accepted == 1, 'fimd counted the acceptance (' .. tostring(accepted) .. ')')
vim.lsp.stop_client(fimd.client_id)
io.stdout:write(string.format('%d passed, %d failed\n', pass, fail))
vim.cmd(fail == 0 and 'qall!' or 'cquit 1')
