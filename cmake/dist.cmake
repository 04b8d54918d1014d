# Generates, from the built binary's command table, what an installation
# carries besides the binary: man/pvelab.1 and one man/pvelab-COMMAND.1 per
# command (`pvelab help --man [COMMAND]`), and the bash, zsh and fish
# completions (`pvelab completion SHELL`). Run by the `dist` target:
#   cmake -DBIN=build/pvelab -DOUT=build/dist -P cmake/dist.cmake
cmake_minimum_required(VERSION 3.19)

function(pl_run out)
	execute_process(COMMAND ${BIN} ${ARGN} OUTPUT_FILE ${out} RESULT_VARIABLE rc)
	if(NOT rc EQUAL 0)
		message(FATAL_ERROR "pvelab ${ARGN}: exit ${rc}")
	endif()
endfunction()

file(REMOVE_RECURSE ${OUT}/man)
file(MAKE_DIRECTORY ${OUT}/man)
pl_run(${OUT}/man/pvelab.1 help --man)
execute_process(COMMAND ${BIN} help -o json OUTPUT_VARIABLE cmds RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
	message(FATAL_ERROR "pvelab help -o json: exit ${rc}")
endif()
string(JSON n LENGTH "${cmds}")
math(EXPR last "${n} - 1")
foreach(i RANGE ${last})
	string(JSON name GET "${cmds}" ${i} name)
	pl_run(${OUT}/man/pvelab-${name}.1 help --man ${name})
endforeach()
pl_run(${OUT}/pvelab.bash completion bash)
pl_run(${OUT}/_pvelab completion zsh)
pl_run(${OUT}/pvelab.fish completion fish)
file(TOUCH ${OUT}/stamp)
