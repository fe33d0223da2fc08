-- editors/nvim/lua/fimd/init.lua — fimd for Neovim: require('fimd').setup({ model = '...' }).
-- 0.7–0.10: starts one fimd client for every buffer, sets omnifunc, and draws ghost text itself from
-- textDocument/inlineCompletion (an extmark overlay; accept all / line / word, dismiss).
-- 0.11+: vim.lsp.config + vim.lsp.enable; 0.12+: the native vim.lsp.inline_completion.
local M = {}

local ns = vim.api.nvim_create_namespace('fimd')
local uv = vim.loop
M.config = {
  cmd = { 'fimd' },
  model = nil,            -- a DeepSeek-Coder-V2 GGUF (nil: FIMD_MODEL, else fimd's bundled small model)
  debounce_ms = 75,
  keys = { accept = '<C-y>', accept_line = '<C-l>', accept_word = '<C-Right>', dismiss = '<C-]>' },
  settings = {},          -- initializationOptions: maxTokens, prefixTokens, ...
}
M.client_id = nil
local state = { buf = nil, row = nil, col = nil, text = nil, timer = nil, seq = 0 }

local function cmd()
  local c = vim.deepcopy(M.config.cmd)
  if M.config.model then vim.list_extend(c, { '--model', M.config.model }) end
  return c
end

local function init_options()
  local o = vim.deepcopy(M.config.settings)
  o.model = M.config.model
  return o
end

--- The current suggestion, if any: { text = ..., row = ..., col = ... } (0-based row/col in bytes).
function M.suggestion()
  if not state.text or state.buf ~= vim.api.nvim_get_current_buf() then return nil end
  return { text = state.text, row = state.row, col = state.col }
end

function M.dismiss()
  if state.buf and vim.api.nvim_buf_is_valid(state.buf) then vim.api.nvim_buf_clear_namespace(state.buf, ns, 0, -1) end
  state.text = nil
end

local function show(buf, row, col, text, command)
  M.dismiss()
  if text == '' then return end
  state.buf, state.row, state.col, state.text = buf, row, col, text
  state.command = command
  local lines = vim.split(text, '\n', { plain = true })
  local opts = { virt_text = { { lines[1], 'Comment' } }, virt_text_pos = 'overlay', hl_mode = 'combine' }
  if #lines > 1 then
    local rest = {}
    for i = 2, #lines do rest[#rest + 1] = { { lines[i], 'Comment' } } end
    opts.virt_lines = rest
  end
  vim.api.nvim_buf_set_extmark(buf, ns, row, col, opts)
end

--- Ask fimd for ghost text at the cursor (or at pos = { row, col }, 0-based, col in bytes: in normal
--- mode the cursor cannot stand after the last character); `done(text)` runs once it is shown.
function M.request(done, pos)
  local client = M.client_id and vim.lsp.get_client_by_id(M.client_id)
  if not client then return end
  local buf = vim.api.nvim_get_current_buf()
  local cur = vim.api.nvim_win_get_cursor(0)
  local row, col = cur[1] - 1, cur[2]
  if pos then row, col = pos[1], pos[2] end
  local line = vim.api.nvim_buf_get_lines(buf, row, row + 1, false)[1] or ''
  local _, utf16 = vim.str_utfindex(line, col) -- LSP positions count UTF-16 units by default
  local params = {
    textDocument = { uri = vim.uri_from_bufnr(buf) },
    position = { line = row, character = utf16 },
    context = { triggerKind = 2 },
  }
  state.seq = state.seq + 1
  local seq = state.seq
  client.request('textDocument/inlineCompletion', params, function(err, result)
    if err or seq ~= state.seq or not result then return end
    local items = result.items or result
    local text = (items[1] and items[1].insertText) or ''
    show(buf, row, col, text, items[1] and items[1].command)
    if done then done(text) end
  end, buf)
end

local function insert(text)
  local s = M.suggestion()
  if not s then return false end
  local command, client = state.command, M.client_id and vim.lsp.get_client_by_id(M.client_id)
  if command and client then -- tell fimd (it counts acceptances)
    client.request('workspace/executeCommand', { command = command.command, arguments = command.arguments }, function() end)
  end
  local lines = vim.split(text, '\n', { plain = true })
  M.dismiss()
  vim.api.nvim_buf_set_text(0, s.row, s.col, s.row, s.col, lines)
  local last_row = s.row + #lines - 1
  local last_col = (#lines == 1 and s.col or 0) + #lines[#lines]
  vim.api.nvim_win_set_cursor(0, { last_row + 1, last_col })
  return true
end

function M.accept() local s = M.suggestion(); return s and insert(s.text) end
function M.accept_line() local s = M.suggestion(); return s and insert((s.text:match('^[^\n]*\n?'))) end
function M.accept_word() local s = M.suggestion(); return s and insert((s.text:match('^%s*[%w_]+') or s.text:match('^%s*[^%w_%s]+') or s.text)) end

local function schedule_request()
  if state.timer then state.timer:stop() else state.timer = uv.new_timer() end
  M.dismiss()
  state.timer:start(M.config.debounce_ms, 0, vim.schedule_wrap(function()
    if vim.fn.mode() == 'i' then M.request() end
  end))
end

local function map_keys(buf)
  local k = M.config.keys
  local function map(lhs, fn)
    if lhs then
      -- an expr mapping cannot change the buffer (textlock): it schedules the edit, or falls back to
      -- the key's own meaning when there is no ghost text
      vim.keymap.set('i', lhs, function()
        if not M.suggestion() then return vim.api.nvim_replace_termcodes(lhs, true, false, true) end
        vim.schedule(fn)
        return ''
      end, { buffer = buf, expr = true, silent = true })
    end
  end
  map(k.accept, M.accept)
  map(k.accept_line, M.accept_line)
  map(k.accept_word, M.accept_word)
  map(k.dismiss, M.dismiss)
end

local function attach(buf)
  if vim.bo[buf].buftype ~= '' then return end
  if not M.client_id then
    M.client_id = vim.lsp.start_client({ name = 'fimd', cmd = cmd(), root_dir = vim.fn.getcwd(), init_options = init_options() })
  end
  if M.client_id then
    vim.lsp.buf_attach_client(buf, M.client_id)
    vim.bo[buf].omnifunc = 'v:lua.vim.lsp.omnifunc'
    map_keys(buf)
  end
end

function M.setup(opts)
  M.config = vim.tbl_deep_extend('force', M.config, opts or {})
  if vim.fn.has('nvim-0.11') == 1 and vim.lsp.config and vim.lsp.enable then
    vim.lsp.config('fimd', { cmd = cmd(), init_options = init_options() }) -- no filetypes: every buffer
    vim.lsp.enable('fimd')
    vim.api.nvim_create_autocmd('LspAttach', { callback = function(ev)
      local c = vim.lsp.get_client_by_id(ev.data.client_id)
      if not c or c.name ~= 'fimd' then return end
      M.client_id = c.id
      if vim.lsp.inline_completion then -- 0.12+: Neovim draws the ghost text
        vim.lsp.inline_completion.enable(true, { bufnr = ev.buf })
      else
        map_keys(ev.buf)
      end
    end })
  else
    vim.api.nvim_create_autocmd('BufEnter', { callback = function(a) attach(a.buf) end })
    attach(vim.api.nvim_get_current_buf())
  end
  if not vim.lsp.inline_completion then
    local group = vim.api.nvim_create_augroup('fimd_ghost', { clear = true })
    vim.api.nvim_create_autocmd({ 'TextChangedI', 'TextChangedP' }, { group = group, callback = schedule_request })
    vim.api.nvim_create_autocmd({ 'InsertLeave', 'BufLeave' }, { group = group, callback = M.dismiss })
  end
end

return M
