package main

import (
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/lmittmann/tint"
	"github.com/mattn/go-isatty"

	"github.com/kinescope-tools/tusproxy/config"
	"github.com/kinescope-tools/tusproxy/internal/safetext"
)

// newLogger is the logger of the whole program, writing to w (stderr).
// TUSPROXY_LOG_FORMAT=json or text is used as chosen. auto (dev's default)
// is for a person: when w is a terminal, readable lines with coloured levels
// (colourless when noColor: NO_COLOR is set, https://no-color.org); when w
// is a file or a pipe, something parses it, so JSON.
func newLogger(cfg *config.Config, w io.Writer, terminal, noColor bool) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	switch {
	case cfg.LogFormat == config.LogFormatText:
		return slog.New(slog.NewTextHandler(w, opts))
	case cfg.LogFormat == config.LogFormatAuto && terminal:
		return slog.New(tint.NewTextHandler(w, &tint.Options{
			Level: cfg.LogLevel, NoColor: noColor, ReplaceAttr: terminalSafe,
		}))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// isTerminal reports whether w is a terminal, where a person reads the log.
func isTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

// terminalSafe is the ReplaceAttr of the terminal handler: it makes every
// message and text value safe to print on a terminal. Peer text reaches log
// lines (an upstream's error, a hook's refusal, net/http's complaint about
// a malformed request), and slog's JSON and text handlers escape every
// control character in it. tint does not: it writes a message as it is, and
// passes ESC through in values so that colours a value carries survive;
// after quoting a value it even turns the four characters \x1b back into
// ESC, so a literal backslash in peer text becomes one too. Here control
// characters become spaces (safetext.Blank) and a literal \x1b is spelled
// \x1B, which reads the same and is not turned into ESC: no peer can clear
// the screen, retitle the window or forge a line.
func terminalSafe(_ []string, a slog.Attr) slog.Attr {
	var text string
	switch a.Value.Kind() {
	case slog.KindString:
		text = a.Value.String()
	case slog.KindAny:
		switch v := a.Value.Any().(type) {
		case slog.Level, *slog.Source: // tint renders these itself
			return a
		case error:
			text = v.Error()
		default:
			text = fmt.Sprint(v)
		}
	default: // numbers, booleans, durations, times: no text of anyone's
		return a
	}
	a.Value = slog.StringValue(strings.ReplaceAll(safetext.Blank(text), `\x1b`, `\x1B`))
	return a
}
