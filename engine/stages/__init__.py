"""Rule-driven stages, each of one shape (engine.stages.base): parameters from the rules -> kernels -> products + a record. Imports: every engine subpackage above cli and simulate."""
