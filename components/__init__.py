"""Pure building blocks of the ML-strategy playbook, one module per concept of the course.

Components take arrays, frames and config values and return results. They import nothing from
`pipelines`, know nothing of Prefect, MLflow or file layouts, and import TensorFlow/Keras only inside the
functions that build, train or run a model, so that the stages which do not train stay quick to start.
"""
