#include <stdio.h>
#include <histedit.h>

// el_set and history take variadic arguments, which Swift cannot pass: one fixed wrapper per use.
static inline int layershare_el_set_prompt(EditLine *el, char *(*prompt)(EditLine *)) { return el_set(el, EL_PROMPT, prompt); }
static inline int layershare_el_set_editor(EditLine *el, const char *mode) { return el_set(el, EL_EDITOR, mode); }
static inline int layershare_el_set_signal(EditLine *el, int handle) { return el_set(el, EL_SIGNAL, handle); }
static inline int layershare_el_set_history(EditLine *el, History *h) { return el_set(el, EL_HIST, history, h); }
static inline int layershare_history_set_size(History *h, int size) { HistEvent ev; return history(h, &ev, H_SETSIZE, size); }
static inline int layershare_history_enter(History *h, const char *line) { HistEvent ev; return history(h, &ev, H_ENTER, line); }
