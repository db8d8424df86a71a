package proxy

import (
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
)

// failingReaderFrom is a ResponseWriter's ReadFrom that fails as sendfile
// does, with its error wrapped as net wraps it.
type failingReaderFrom struct{ errno syscall.Errno }

func (f failingReaderFrom) Write(b []byte) (int, error) { return len(b), nil }
func (f failingReaderFrom) ReadFrom(io.Reader) (int64, error) {
	return 0, &net.OpError{Op: "sendfile", Net: "tcp", Err: os.NewSyscallError("sendfile", f.errno)}
}

// TestFileSenderBlames: a sendfile that fails with EIO failed on the
// file (the proxy logs a failed fetch); one that fails otherwise (the
// client reset or closed the connection) is the client's.
func TestFileSenderBlames(t *testing.T) {
	for errno, client := range map[syscall.Errno]bool{syscall.EIO: false, syscall.EPIPE: true, syscall.ECONNRESET: true} {
		out := &clientWriter{w: failingReaderFrom{errno}}
		_, err := fileSender{out}.ReadFrom(&io.LimitedReader{R: strings.NewReader("x"), N: 1})
		if !errors.Is(err, errno) {
			t.Fatalf("%v: the error is lost: %v", errno, err)
		}
		if (out.err != nil) != client {
			t.Errorf("%v: counted as the client's: %v, want %v", errno, out.err != nil, client)
		}
	}
}
