;;; tests/editors/eglot_test.el --- Emacs + Eglot (batch) as fimd's client  -*- lexical-binding: t -*-
;; Opens a C buffer with fimd as the Eglot server for every programming mode, types "sum" through
;; the command loop, and checks that textDocument/inlineCompletion (sent on Eglot's connection: Eglot
;; has no inline UI of its own) and completion-at-point give the text `fimd complete' gives for the
;; same buffer and cursor.  Env: FIMD_BIN, FIMD_MODEL, FIMD_FILE, FIMD_EXPECT.
;; Run: emacs --batch -Q -l tests/editors/eglot_test.el

(setq package-directory-list '("/usr/share/emacs/site-lisp/elpa"))
(package-initialize)
(require 'eglot)

(defvar fimd-pass 0)
(defvar fimd-fail 0)
(defun fimd-check (ok what)
  (if ok (setq fimd-pass (1+ fimd-pass))
    (setq fimd-fail (1+ fimd-fail))
    (princ (format "FAIL emacs: %s\n" what))))

(defun fimd-finish ()
  (princ (format "%d passed, %d failed\n" fimd-pass fimd-fail))
  (kill-emacs (if (> fimd-fail 0) 1 0)))

(condition-case err
    (let* ((expected (with-temp-buffer
                       (insert-file-contents-literally (getenv "FIMD_EXPECT"))
                       (decode-coding-string (buffer-string) 'utf-8)))
           (eglot-sync-connect t))
      (add-to-list 'eglot-server-programs
                   `((prog-mode text-mode) . (,(getenv "FIMD_BIN") "--model" ,(getenv "FIMD_MODEL"))))
      (find-file (getenv "FIMD_FILE"))
      (c-mode)
      (call-interactively #'eglot)
      (let ((server (eglot-current-server)))
        (fimd-check server "eglot connected")
        (fimd-check (let ((ok nil))
                      (dotimes (_ 400)
                        (unless ok
                          (setq ok (equal "ready" (plist-get (jsonrpc-request server :fimd/status nil) :state)))
                          (unless ok (sleep-for 0.05))))
                      ok)
                    "model ready")
        (goto-char (point-min))
        (forward-line 12)
        (move-to-column 8)
        (execute-kbd-macro "sum")
        (eglot--signal-textDocument/didChange)
        (let* ((result (jsonrpc-request server :textDocument/inlineCompletion
                                        (append (eglot--TextDocumentPositionParams)
                                                '(:context (:triggerKind 1)))))
               (items (plist-get result :items))
               (got (if (> (length items) 0) (plist-get (aref items 0) :insertText) "")))
          (fimd-check (equal got expected) (format "inline text equals fimd complete: [%s] vs [%s]" got expected)))
        (let* ((capf (eglot-completion-at-point))
               (table (nth 2 capf))
               (cands (and table (all-completions "" table))))
          (fimd-check (or (string-empty-p expected) (> (length cands) 0)) "completion-at-point has a candidate")
          (when (> (length cands) 0)
            (let ((first-line (string-trim-left (car (split-string expected "\n")))))
              ;; Eglot shows labels without their leading whitespace
              (fimd-check (member first-line cands) (format "candidate is the first line: %S" cands)))))
        (eglot-shutdown server)
        (fimd-check (not (jsonrpc-running-p server)) "server shut down"))
      (fimd-finish))
  (error (fimd-check nil (format "error: %S" err)) (fimd-finish)))
