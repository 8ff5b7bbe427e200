// Command hello prints msg (set with -ldflags "-X main.msg=..."); with the
// argument "wait" it first waits for the end of stdin.
package main

import (
	"fmt"
	"io"
	"os"
)

var msg = "hello"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "wait" {
		io.Copy(io.Discard, os.Stdin)
	}
	fmt.Println(msg)
}
