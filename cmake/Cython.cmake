# dsstne_cythonize(name pyx): translate a .pyx to C++ in the build tree with the Cython of the build environment.
function(dsstne_cythonize name pyx)
  set(_out ${CMAKE_CURRENT_BINARY_DIR}/${name}.cpp)
  file(GLOB _deps CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/dsstne/*.pxd ${CMAKE_CURRENT_SOURCE_DIR}/include/dsstne/*.h)
  add_custom_command(
    OUTPUT ${_out}
    COMMAND ${Python_EXECUTABLE} -m cython --cplus -3 -X embedsignature=True
            -I ${CMAKE_CURRENT_SOURCE_DIR}/dsstne ${CMAKE_CURRENT_SOURCE_DIR}/${pyx} -o ${_out}
    DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/${pyx} ${_deps}
    COMMENT "Cython ${pyx}")
endfunction()
