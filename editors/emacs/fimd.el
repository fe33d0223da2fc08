;;; fimd.el --- Local fill-in-the-middle completions from fimd, through Eglot  -*- lexical-binding: t -*-

;; Version: 0.1.0
;; Package-Requires: ((emacs "28.1") (eglot "1.9"))
;; Keywords: convenience, languages

;;; Commentary:
;; (require 'fimd) (setq fimd-model "/path/to/DeepSeek-Coder-V2-Lite-Base-Q4_K_M.gguf") (fimd-setup)
;; registers fimd with Eglot for every programming and text mode and turns on `fimd-mode' there:
;; ghost text from textDocument/inlineCompletion (Eglot has no inline UI of its own) shown as an
;; overlay after point; TAB accepts it, any other command dismisses it. Eglot's completion-at-point
;; works too, and on Emacs 30 `completion-preview-mode' shows those completions as ghost text.

;;; Code:

(require 'eglot)
(require 'jsonrpc)

(defgroup fimd nil "Local code completion with fimd." :group 'tools)
(defcustom fimd-program "fimd" "The fimd binary." :type 'string)
(defcustom fimd-model nil "A DeepSeek-Coder-V2 GGUF file (nil: FIMD_MODEL, else fimd's bundled small model)."
  :type '(choice (const nil) file))
(defcustom fimd-idle-delay 0.1 "Seconds of idle typing before ghost text is requested." :type 'number)

(defcustom fimd-backend nil
  "A serving engine as \"API:URL\" (API: openai, sglang, llamacpp, ollama), or nil for the in-process model.
`fimd-model' then names a GGUF with the model's tokenizer."
  :type '(choice (const nil) string))
(defcustom fimd-backend-args nil
  "More backend options for fimd, e.g. (\"--backend-model\" \"NAME\" \"--api-key-env\" \"VAR\")."
  :type '(repeat string))

(defun fimd--command ()
  (append (list fimd-program) (when fimd-model (list "--model" (expand-file-name fimd-model)))
          (when fimd-backend (append (list "--backend" fimd-backend) fimd-backend-args))))

;;;###autoload
(defun fimd-setup ()
  "Register fimd with Eglot for every programming and text mode, with ghost text there."
  (add-to-list 'eglot-server-programs `((prog-mode text-mode) . ,(fimd--command)))
  (add-hook 'prog-mode-hook #'eglot-ensure)
  (add-hook 'eglot-managed-mode-hook (lambda () (fimd-mode (if (eglot-managed-p) 1 -1)))))

(defvar-local fimd--overlay nil)
(defvar-local fimd--text nil)
(defvar-local fimd--pos nil)
(defvar-local fimd--timer nil)
(defvar-local fimd--command nil)

(defun fimd-dismiss ()
  "Remove the ghost text."
  (interactive)
  (when fimd--overlay (delete-overlay fimd--overlay))
  (setq fimd--overlay nil fimd--text nil fimd--pos nil))

(defun fimd--show (pos text)
  (fimd-dismiss)
  (unless (string-empty-p text)
    (let ((s (propertize text 'face 'shadow)))
      (put-text-property 0 1 'cursor t s) ; the cursor stays before the ghost text
      (setq fimd--overlay (make-overlay pos pos nil t nil) fimd--text text fimd--pos pos)
      (overlay-put fimd--overlay 'after-string s))))

(defun fimd-request (&optional callback)
  "Ask fimd for ghost text at point; CALLBACK, if given, gets the text once it is shown."
  (interactive)
  (let ((server (eglot-current-server)) (pos (point)) (buf (current-buffer)))
    (when server
      (eglot--signal-textDocument/didChange)
      (jsonrpc-async-request
       server :textDocument/inlineCompletion
       (append (eglot--TextDocumentPositionParams) '(:context (:triggerKind 1)))
       :success-fn
       (lambda (result)
         (when (buffer-live-p buf)
           (with-current-buffer buf
             (when (= (point) pos) ; stale answers are dropped
               (let* ((items (if (vectorp result) result (plist-get result :items)))
                      (text (if (> (length items) 0) (plist-get (aref items 0) :insertText) "")))
                 (fimd--show pos text)
                 (setq fimd--command (and (> (length items) 0) (plist-get (aref items 0) :command)))
                 (when callback (funcall callback text)))))))
       :error-fn #'ignore
       :deferred :textDocument/inlineCompletion))))

(defun fimd-accept ()
  "Insert the ghost text; nil when there is none."
  (interactive)
  (when fimd--text
    (let ((text fimd--text) (pos fimd--pos) (server (eglot-current-server)))
      (when (and fimd--command server) ; tell fimd (it counts acceptances)
        (jsonrpc-async-request server :workspace/executeCommand
                               (list :command (plist-get fimd--command :command)
                                     :arguments (plist-get fimd--command :arguments))
                               :success-fn #'ignore :error-fn #'ignore))
      (fimd-dismiss)
      (goto-char pos)
      (insert text)
      t)))

(defun fimd-accept-or-indent ()
  "Accept the ghost text, or indent as TAB does."
  (interactive)
  (unless (fimd-accept) (indent-for-tab-command)))

(defun fimd--post-command ()
  (unless (eq this-command 'fimd-accept-or-indent)
    (fimd-dismiss)
    (when (memq this-command '(self-insert-command newline))
      (when fimd--timer (cancel-timer fimd--timer))
      (let ((buf (current-buffer)))
        (setq fimd--timer (run-with-idle-timer
                           fimd-idle-delay nil
                           (lambda () (when (buffer-live-p buf) (with-current-buffer buf (fimd-request))))))))))

(defvar fimd-mode-map
  (let ((m (make-sparse-keymap)))
    (define-key m (kbd "TAB") #'fimd-accept-or-indent)
    m)
  "Keys of `fimd-mode'.")

;;;###autoload
(define-minor-mode fimd-mode
  "Ghost text from fimd while typing; TAB accepts it, any other command dismisses it."
  :lighter " fimd" :keymap fimd-mode-map
  (if fimd-mode
      (add-hook 'post-command-hook #'fimd--post-command nil t)
    (remove-hook 'post-command-hook #'fimd--post-command t)
    (fimd-dismiss)))

(provide 'fimd)
;;; fimd.el ends here
