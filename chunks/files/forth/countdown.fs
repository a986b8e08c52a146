\ Read from standard input by `run forth < forth/countdown.fs`.
: countdown ( n -- ) begin dup . 1 - dup 0 = until drop ." liftoff" cr ;
10 countdown
: squares 11 1 do i i * . loop cr ;
squares
7 6 * . cr
42 bye
