# The same commands as ./dev (which needs nothing but python3), for those used to make:
#   make demo    the whole product on embedded defaults: no accounts, no network
#   make test    the test suite (SQLite; TEST_DATABASE_URL=postgresql+psycopg://... for PostgreSQL)
# ARGS passes options on: make demo ARGS="--fresh --as admin", make test ARGS="-k payment".

.PHONY: demo test lint lock install ci

demo test lint lock install:
	./dev $@ $(ARGS)

ci:
	bash .ci/run
