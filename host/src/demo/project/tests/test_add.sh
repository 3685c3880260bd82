. src/add.sh
[ "$(add 2 3)" = 5 ]
