\ Primes by trial division, Fibonacci numbers, a factorial table and a collatz record.
variable found
: divides? ( n d -- flag ) mod 0 = ;
: prime? ( n -- flag )
  dup 2 < if drop 0 else
  dup 4 < if drop -1 else
    -1 swap dup 2 do
      i i * over > if else
        dup i divides? if swap drop 0 swap then
      then
    loop drop
  then then ;
: primes ( limit -- ) 0 found ! 2 do i prime? if i . 1 found +! then loop cr ;
." primes below 200: " 200 primes
." count: " found @ . cr
: fib ( n -- f ) 0 1 rot 0 do tuck + loop drop ;
: fibs 21 1 do i fib . loop cr ;
." fib: " fibs
: fact ( n -- n! ) 1 swap 1 + 1 do i * loop ;
: facts 16 1 do i fact . loop cr ;
." factorials: " facts
: collatz ( n -- steps ) 0 swap begin dup 1 > while
    dup 2 mod if 3 * 1 + else 2 / then swap 1 + swap
  repeat drop ;
variable best  variable best-n
: record ( limit -- ) 0 best ! 1 do i collatz dup best @ > if best ! i best-n ! else drop then loop ;
1000 record
." longest collatz below 1000: " best-n @ . ." with " best @ . ." steps" cr
