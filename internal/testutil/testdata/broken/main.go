// Command broken does not compile: Build must report it.
package main

func main() {
	var n int = "not a number"
	_ = n
}
