package main

func runServer(args []string) int { return 2 }
