/*
 * Console backends for the guest's serial port: stdio, a file, or a unix
 * socket that kagami listens on (clients may come and go; the last
 * CONSOLE_BACKLOG bytes written while none was connected are replayed to
 * the next). Writes are buffered until console_flush() and are thread-safe.
 * Input (a terminal on stdin, or the socket's client) is handed to `rx` on
 * the console's own thread.
 *
 * A terminal on stdin (console stdio) is put in raw mode while the console
 * is open, so that every key reaches the guest (Ctrl-C included), and
 * restored by console_close — on every way out: a stop, a signal, the
 * guest's end (a crash handler restores it too: console_tty_saved). The
 * escape key is Ctrl-A, as QEMU's: Ctrl-A x quits (the `quit` callback),
 * Ctrl-A Ctrl-A sends a Ctrl-A, Ctrl-A h prints the keys.
 */
#ifndef KG_CONSOLE_H
#define KG_CONSOLE_H

#include <stddef.h>
#include <stdint.h>
#include "base/err.h"

enum console_kind { CONSOLE_STDIO, CONSOLE_FILE, CONSOLE_UNIX, CONSOLE_NONE };

struct console_spec {
	enum console_kind kind;
	char path[108]; /* sun_path's size */
};

#define CONSOLE_BACKLOG 65536

/* Parses "stdio", "none", "file:PATH" or "unix:PATH" (pure). */
int console_parse(const char *s, struct console_spec *spec, struct kg_err *e);

struct console;
/* rx returns how many bytes it accepted; the rest are offered again. */
typedef size_t (*console_rx_fn)(void *opaque, const uint8_t *data, size_t n);
/* The user asked to quit from the terminal (Ctrl-A x). */
typedef void (*console_quit_fn)(void *opaque);

struct console *console_open(const struct console_spec *spec,
			     console_rx_fn rx, console_quit_fn quit,
			     void *opaque, struct kg_err *e);
void console_write(struct console *c, const uint8_t *data, size_t n);
void console_flush(struct console *c);
/* Flushes, stops the input thread, closes and removes the socket. */
void console_close(struct console *c);

#endif
