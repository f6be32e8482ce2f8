# Writes a man page from a program's own option table: PROG --help-man > OUT.
# cmake -DPROG=path -DOUT=file -P gen-man.cmake
set(ENV{ASAN_OPTIONS} "detect_leaks=0")
execute_process(COMMAND ${PROG} --help-man OUTPUT_FILE ${OUT}.tmp RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${PROG} --help-man failed: ${rc}")
endif()
file(RENAME ${OUT}.tmp ${OUT})
