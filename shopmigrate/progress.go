package shopmigrate

import (
	"fmt"
	"io"
	"os"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// bar is a progress bar with rate and ETA, or nothing.
type bar struct{ b *progressbar.ProgressBar }

// newBar draws a bar for a table of total rows on w, when w is non-nil.
func newBar(w io.Writer, total int64, table string) bar {
	if w == nil {
		return bar{}
	}
	return bar{progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(fmt.Sprintf("%-18s", table)),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("rows"),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100_000_000), // redraw at most every 100 ms
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
	)}
}

func (b bar) add(n int64) {
	if b.b != nil {
		_ = b.b.Add64(n)
	}
}

func (b bar) close() {
	if b.b != nil {
		_ = b.b.Finish()
	}
}

// terminal returns w if it is a terminal, else nil: progress bars are
// drawn only for people watching.
func terminal(w io.Writer) io.Writer {
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return w
	}
	return nil
}
