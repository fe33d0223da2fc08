package main

import (
	"fmt"
	"os"
)

func readFile(name string) ([]byte, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		
	}
	return data, nil
}

func main() {
	fmt.Println(readFile("x"))
}
