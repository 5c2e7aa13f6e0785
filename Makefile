.PHONY: demo test
demo:  ## set up .venv and run the demo
	./dev demo
test:  ## set up .venv and run linters and every test
	./dev test
