package main

func runClient(args []string) int { return 2 }
