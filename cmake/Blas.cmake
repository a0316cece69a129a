# CPU BLAS: the scipy-openblas32 wheel (symbols prefixed scipy_), found through the Python running the build;
# otherwise any system CBLAS. Defines target dsstne_blas and DSSTNE_BLAS_PREFIX.
execute_process(
  COMMAND ${Python_EXECUTABLE} -c "import scipy_openblas32 as s; print(s.get_include_dir()); print(s.get_lib_dir())"
  OUTPUT_VARIABLE _ob OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _ob_rc ERROR_QUIET)
add_library(dsstne_blas INTERFACE)
if(_ob_rc EQUAL 0)
  string(REPLACE "\n" ";" _ob "${_ob}")
  list(GET _ob 0 _ob_inc)
  list(GET _ob 1 _ob_lib)
  target_include_directories(dsstne_blas INTERFACE ${_ob_inc})
  target_link_libraries(dsstne_blas INTERFACE ${_ob_lib}/libscipy_openblas.so)
  set(DSSTNE_BLAS_PREFIX scipy_)
  set(DSSTNE_BLAS_RPATH ${_ob_lib})
  set(DSSTNE_BLAS_NAME "scipy-openblas32")
  message(STATUS "dsstne: BLAS from scipy-openblas32 (${_ob_lib})")
else()
  find_package(BLAS REQUIRED)
  target_link_libraries(dsstne_blas INTERFACE ${BLAS_LIBRARIES})
  set(DSSTNE_BLAS_PREFIX "")
  set(DSSTNE_BLAS_RPATH "")
  set(DSSTNE_BLAS_NAME "system BLAS")
  message(STATUS "dsstne: system BLAS ${BLAS_LIBRARIES}")
endif()
