"""The catalogue of broken rule files (``broken/``) and exactly what the checker says about each:
the expected findings that `test_checker_catalogue.py` checks (same count, file, line, column,
code, message and hint)."""

from __future__ import annotations

# (entry file, [(file, line, column, code, message, hint), ...])
CASES: list[tuple[str, list[tuple[str, int, int, str, str, str | None]]]] = [
    ('string_set_member_impossible.rules', [
        ('string_set_member_impossible.rules', 1, 47, 'never-true',
         "'21m' is never a value here; possible values: 12m, 7m, TP, VLA, mixed",
         "did you mean '12m'?"),
    ]),
    ('step_sets_same_value_other_unit.rules', [
        ('step_sets_same_value_other_unit.rules', 6, 9, 'step-never-applies',
         "step 's' can never change anything: a is already 30000 MB",
         None),
    ]),
    ('digits_out_of_range.rules', [
        ('digits_out_of_range.rules', 1, 1, 'out-of-range',
         "dataset.x: 'digits' must be 1 to 15 significant digits, got 0",
         None),
    ]),
    ('duplicate_clause.rules', [
        ('duplicate_clause.rules', 3, 1, 'syntax',
         "derive dataset.y gives 'when' twice",
         None),
    ]),
    ('duplicate_keep_clause.rules', [
        ('duplicate_keep_clause.rules', 6, 9, 'syntax',
         "keep gives 'where' twice",
         None),
    ]),
    ('add_hz_to_jy.rules', [
        ('add_hz_to_jy.rules', 1, 20, 'unit-mismatch',
         'cannot add Jy to GHz',
         None),
    ]),
    ('add_string.rules', [
        ('add_string.rules', 1, 20, 'type-mismatch',
         "'+' needs numbers, got a string",
         None),
    ]),
    ('aggregate_else_unit.rules', [
        ('aggregate_else_unit.rules', 1, 55, 'unit-mismatch',
         "the 'else' value is a quantity in Jy, the max() is a quantity in GHz",
         None),
    ]),
    ('aggregate_extra_argument.rules', [
        ('aggregate_extra_argument.rules', 1, 20, 'arity',
         'sum() takes only the generator',
         None),
    ]),
    ('aggregate_of_number.rules', [
        ('aggregate_of_number.rules', 1, 20, 'type-mismatch',
         'count() aggregates a collection: write count(x for x in ...) or count(collection)',
         None),
    ]),
    ('and_on_numbers.rules', [
        ('and_on_numbers.rules', 1, 20, 'type-mismatch',
         "'and' needs true or false on both sides, got a number",
         None),
        ('and_on_numbers.rules', 1, 26, 'type-mismatch',
         "'and' needs true or false on both sides, got a number",
         None),
    ]),
    ('any_of_numbers.rules', [
        ('any_of_numbers.rules', 1, 20, 'type-mismatch',
         'any() needs true/false elements, got a number',
         None),
    ]),
    ('bad_indentation.rules', [
        ('bad_indentation.rules', 3, 3, 'syntax',
         'inconsistent indentation: this line does not line up with any enclosing block',
         None),
    ]),
    ('bands_duplicate_label.rules', [
        ('bands_duplicate_label.rules', 3, 5, 'duplicate',
         "band 'red' is listed twice in 'colour'",
         None),
    ]),
    ('bands_gap_at_top.rules', [
        ('bands_gap_at_top.rules', 1, 26, 'coverage-gap',
         "bands 'colour' leaves 1 uncovered",
         None),
    ]),
    ('cascade_without_until.rules', [
        ('cascade_without_until.rules', 3, 1, 'cascade-until',
         "cascade 'shrink' has no 'until' condition",
         None),
    ]),
    ('closed_infinite_end.rules', [
        ('closed_infinite_end.rules', 1, 21, 'bad-interval',
         "an infinite end must be open: write '(-inf' or 'inf)'",
         None),
    ]),
    ('collection_has_no_attribute.rules', [
        ('collection_has_no_attribute.rules', 1, 20, 'type-mismatch',
         "a collection has no attribute 'nchan'; use an aggregate such as max(x.nchan for x in ...)",
         None),
    ]),
    ('collection_of_fact_kind.rules', [
        ('collection_of_fact_kind.rules', 1, 1, 'duplicate',
         "collection 'spw': 'spw' is already a kind of facts",
         None),
    ]),
    ('collection_shapes.rules', [
        ('collection_shapes.rules', 4, 9, 'collection-shape',
         "every emit of 'image' must set the same attributes: field, specmode (this one sets field)",
         None),
    ]),
    ('compare_different_enums.rules', [
        ('compare_different_enums.rules', 3, 20, 'type-mismatch',
         'cannot compare a colour with an intent',
         None),
    ]),
    ('compare_gb_arcsec.rules', [
        ('compare_gb_arcsec.rules', 1, 20, 'unit-mismatch',
         'cannot compare GB with arcsec',
         None),
    ]),
    ('conflict_no_priority.rules', [
        ('conflict_no_priority.rules', 2, 1, 'conflict',
         'two rules can assign dataset.x for the same dataset (conflict_no_priority.rules:1 and this one) and neither declares a priority',
         "make their 'when' conditions exclusive or give each a 'priority'"),
    ]),
    ('conflict_one_priority.rules', [
        ('conflict_one_priority.rules', 3, 1, 'conflict',
         'two rules can assign dataset.x for the same dataset (conflict_one_priority.rules:1 and this one) and only one declares a priority',
         "make their 'when' conditions exclusive or give each a 'priority'"),
    ]),
    ('conflict_same_priority.rules', [
        ('conflict_same_priority.rules', 3, 1, 'conflict',
         'two rules can assign dataset.x for the same dataset (conflict_same_priority.rules:1 and this one) and they have the same priority',
         "make their 'when' conditions exclusive or give each a 'priority'"),
    ]),
    ('cycle_three.rules', [
        ('cycle_three.rules', 1, 1, 'cycle',
         'dependency cycle: dataset.a -> dataset.b -> dataset.c -> dataset.a',
         None),
    ]),
    ('cycle_two.rules', [
        ('cycle_two.rules', 1, 1, 'cycle',
         'dependency cycle: dataset.a -> dataset.b -> dataset.a',
         None),
    ]),
    ('declared_unit_mismatch.rules', [
        ('declared_unit_mismatch.rules', 1, 20, 'unit-mismatch',
         'dataset.x is declared in Jy but its formula gives GHz',
         None),
    ]),
    ('declared_unit_on_string.rules', [
        ('declared_unit_on_string.rules', 1, 1, 'type-mismatch',
         'dataset.x declares a unit but its formula gives a string',
         None),
    ]),
    ('declared_unit_unknown.rules', [
        ('declared_unit_unknown.rules', 1, 1, 'unknown-unit',
         "unknown unit 'GHzz'",
         None),
    ]),
    ('derive_fact.rules', [
        ('derive_fact.rules', 1, 1, 'derive-fact',
         'spw.nchan is a fact of the data; a rule cannot derive it',
         'give the derived value another name'),
    ]),
    ('derived_and_scored.rules', [
        ('derived_and_scored.rules', 3, 1, 'duplicate',
         'dataset.quality is both derived and scored',
         None),
    ]),
    ('drop_contradictory.rules', [
        ('drop_contradictory.rules', 6, 24, 'step-never-applies',
         "step 'drop wide': no spw can satisfy this condition",
         None),
    ]),
    ('duplicate_param.rules', [
        ('duplicate_param.rules', 2, 1, 'duplicate',
         "param 'x' is already declared at duplicate_param.rules:1:1",
         "write 'override param x ...' to replace it"),
    ]),
    ('emit_sets_key.rules', [
        ('emit_sets_key.rules', 3, 31, 'derive-fact',
         "'key' is built in: it is made from the emitted attributes",
         None),
    ]),
    ('emit_sets_twice.rules', [
        ('emit_sets_twice.rules', 3, 9, 'duplicate',
         "emit sets 'field' twice",
         None),
    ]),
    ('empty_interval.rules', [
        ('empty_interval.rules', 3, 5, 'bad-interval',
         'interval (5, 5) is empty',
         None),
    ]),
    ('enum_duplicate_member.rules', [
        ('enum_duplicate_member.rules', 1, 1, 'duplicate',
         "enum 'colour' lists 'red' twice",
         None),
    ]),
    ('enum_member_taken.rules', [
        ('enum_member_taken.rules', 1, 1, 'duplicate',
         "'TARGET' is already a member of enum 'intent'",
         None),
    ]),
    ('enum_redefines_schema.rules', [
        ('enum_redefines_schema.rules', 1, 1, 'duplicate',
         "enum 'intent' is already defined by the facts schema",
         None),
    ]),
    ('equal_different_units.rules', [
        ('equal_different_units.rules', 1, 20, 'unit-mismatch',
         'cannot compare a quantity in m with a quantity in s',
         None),
    ]),
    ('exponent_with_unit.rules', [
        ('exponent_with_unit.rules', 1, 24, 'unit-mismatch',
         'an exponent must be a plain number',
         None),
    ]),
    ('for_over_number.rules', [
        ('for_over_number.rules', 1, 37, 'type-mismatch',
         "'for x in ...' needs a collection, got a number",
         None),
    ]),
    ('if_branch_units.rules', [
        ('if_branch_units.rules', 1, 20, 'unit-mismatch',
         "the branches differ: 'then' gives a quantity in m, 'else' gives a quantity in s",
         None),
    ]),
    ('if_without_else.rules', [
        ('if_without_else.rules', 1, 34, 'syntax',
         "unexpected end of line; expected 'else'",
         None),
    ]),
    ('impossible_literal.rules', [
        ('impossible_literal.rules', 1, 25, 'never-true',
         "'21m' is never a value here; possible values: 12m, 7m, TP, VLA, mixed",
         "did you mean '12m'?"),
    ]),
    ('in_needs_collection.rules', [
        ('in_needs_collection.rules', 1, 25, 'type-mismatch',
         "'in' needs a collection or set on the right, got a number",
         None),
    ]),
    ('in_wrong_element.rules', [
        ('in_wrong_element.rules', 1, 20, 'type-mismatch',
         'cannot look for a number in a collection of spw',
         None),
    ]),
    ('invalid_utf8.rules', [
        ('invalid_utf8.rules', 2, 1, 'encoding',
         "invalid UTF-8 (byte 0xff): rule files are UTF-8 text",
         None),
    ]),
    ('keep_not_collection.rules', [
        ('keep_not_collection.rules', 6, 9, 'type-mismatch',
         "cannot keep or drop datasets: there is no collection 'datasets'",
         None),
    ]),
    ('kind_as_name.rules', [
        ('kind_as_name.rules', 1, 20, 'unknown-name',
         "unknown name 'spw'",
         "'spw' is a kind; inside a rule about spws write 'spw.attribute', or range over 'spws'"),
    ]),
    ('log_of_quantity.rules', [
        ('log_of_quantity.rules', 1, 20, 'unit-mismatch',
         "log's argument must be dimensionless, got a quantity in GHz",
         None),
    ]),
    ('lookup_not_collection.rules', [
        ('lookup_not_collection.rules', 1, 20, 'type-mismatch',
         'lookup() searches a collection, got a number',
         None),
    ]),
    ('missing_import.rules', [
        ('missing_import.rules', 1, 1, 'import-missing',
         "imported file 'nothere.rules' not found",
         None),
    ]),
    ('mixed_set.rules', [
        ('mixed_set.rules', 1, 24, 'type-mismatch',
         'mixed elements: a number and a string',
         None),
    ]),
    ('negate_string.rules', [
        ('negate_string.rules', 1, 20, 'type-mismatch',
         'cannot negate a string',
         None),
    ]),
    ('not_on_number.rules', [
        ('not_on_number.rules', 1, 20, 'type-mismatch',
         "'not' needs true or false, got a number",
         None),
    ]),
    ('order_strings.rules', [
        ('order_strings.rules', 1, 20, 'type-mismatch',
         "'<' compares numbers, got a string and a string",
         None),
    ]),
    ('override_derive_nothing.rules', [
        ('override_derive_nothing.rules', 1, 1, 'override-nothing',
         "override derive 'dataset.quality' names nothing declared before it",
         None),
    ]),
    ('param_cycle.rules', [
        ('param_cycle.rules', 1, 1, 'cycle',
         'dependency cycle: param a -> param b -> param a',
         None),
    ]),
    ('param_hides_collection.rules', [
        ('param_hides_collection.rules', 1, 1, 'duplicate',
         "parameter 'spws' hides the collection of that name",
         None),
    ]),
    ('param_not_constant.rules', [
        ('param_not_constant.rules', 1, 17, 'not-constant',
         "'spws' is not a constant: a parameter's default may use numbers, units and other parameters",
         None),
    ]),
    ('percentile_out_of_range.rules', [
        ('percentile_out_of_range.rules', 1, 31, 'out-of-range',
         'a percentile level must be in [0, 100], got 120',
         None),
    ]),
    ('percentile_without_level.rules', [
        ('percentile_without_level.rules', 1, 20, 'type-mismatch',
         'percentile() takes the percentile first: percentile(80, x for x in xs)',
         None),
    ]),
    ('power_of_quantity.rules', [
        ('power_of_quantity.rules', 1, 55, 'unit-mismatch',
         'a quantity with a unit can only be raised to a literal number (the unit must be known)',
         None),
    ]),
    ('rank_by_collection.rules', [
        ('rank_by_collection.rules', 6, 28, 'type-mismatch',
         'cannot rank by a collection of intent',
         None),
    ]),
    ('score_clamp_unit.rules', [
        ('score_clamp_unit.rules', 4, 12, 'unit-mismatch',
         "the clamp bounds must be in the score's unit",
         None),
    ]),
    ('score_duplicate_reason.rules', [
        ('score_duplicate_reason.rules', 4, 5, 'duplicate',
         "score dataset.quality has two terms with reason 'missing calibrator'",
         None),
    ]),
    ('score_term_unit.rules', [
        ('score_term_unit.rules', 3, 7, 'unit-mismatch',
         'this term is in GHz, the score in plain numbers',
         None),
    ]),
    ('score_without_start.rules', [
        ('score_without_start.rules', 1, 1, 'score-start',
         "score dataset.quality has no 'start' value",
         None),
    ]),
    ('step_always_value.rules', [
        ('step_always_value.rules', 6, 9, 'step-never-applies',
         "step 'bin channels' can never change anything: spw.nbin is always 1",
         None),
    ]),
    ('step_contradictory_where.rules', [
        ('step_contradictory_where.rules', 6, 32, 'step-never-applies',
         "step 'bin channels': no spw can satisfy this condition",
         None),
    ]),
    ('step_derived_unit.rules', [
        ('step_derived_unit.rules', 6, 24, 'unit-mismatch',
         'spw.nbin is a number, the step sets a quantity in GHz',
         None),
    ]),
    ('step_duplicate_name.rules', [
        ('step_duplicate_name.rules', 7, 5, 'duplicate',
         "cascade 'shrink' has two steps named 'bin channels'",
         None),
    ]),
    ('step_param_unit.rules', [
        ('step_param_unit.rules', 8, 19, 'unit-mismatch',
         'parameter ppb is a number, the step sets a quantity in arcsec',
         None),
    ]),
    ('step_param_where.rules', [
        ('step_param_where.rules', 8, 27, 'syntax',
         "'where' selects entities; a parameter has one value",
         None),
    ]),
    ('step_repeats_earlier.rules', [
        ('step_repeats_earlier.rules', 9, 5, 'step-never-applies',
         "step 'second' can never change anything: it repeats step 'first'",
         None),
    ]),
    ('step_sets_current_value.rules', [
        ('step_sets_current_value.rules', 8, 9, 'step-never-applies',
         "step '3 pixels per beam' can never change anything: ppb is already 5",
         None),
    ]),
    ('step_sets_fact.rules', [
        ('step_sets_fact.rules', 6, 9, 'derive-fact',
         'a cascade can only set derived values; spw.nchan is a fact value',
         None),
    ]),
    ('step_sets_unknown_attribute.rules', [
        ('step_sets_unknown_attribute.rules', 6, 9, 'unknown-attribute',
         "spw has no attribute 'nbins'",
         "did you mean 'nbin'?"),
    ]),
    ('step_sets_unknown_kind.rules', [
        ('step_sets_unknown_kind.rules', 6, 9, 'unknown-kind',
         "unknown kind 'spww'",
         "did you mean 'spw'?"),
    ]),
    ('step_unknown_param.rules', [
        ('step_unknown_param.rules', 8, 9, 'unknown-name',
         "step '3 pixels per beam' sets unknown parameter 'pbb'",
         "did you mean 'ppb'?"),
    ]),
    ('stray_string.rules', [
        ('stray_string.rules', 3, 1, 'syntax',
         "a lone string is only allowed as the file's first line (its doc string)",
         None),
    ]),
    ('syntax_expected.rules', [
        ('syntax_expected.rules', 1, 9, 'syntax',
         "unexpected '5'; expected '='",
         None),
    ]),
    ('syntax_operator.rules', [
        ('syntax_operator.rules', 3, 23, 'syntax',
         "unexpected '+'; expected '(', '-', '[', 'false', 'inf', 'true', '{', a name, a number, a string",
         None),
    ]),
    ('table_bound_unit.rules', [
        ('table_bound_unit.rules', 2, 13, 'unit-mismatch',
         "bound 100 Jy does not match the table's domain, which is in GHz",
         None),
    ]),
    ('table_call_arity.rules', [
        ('table_call_arity.rules', 4, 20, 'arity',
         't() takes 1 argument, got 2',
         None),
    ]),
    ('table_domain_empty.rules', [
        ('table_domain_empty.rules', 1, 17, 'bad-interval',
         'the domain (5, 5) is empty',
         None),
    ]),
    ('table_gap.rules', [
        ('table_gap.rules', 3, 5, 'coverage-gap',
         "table 't' leaves (4, 5] uncovered",
         None),
    ]),
    ('table_gap_with_units.rules', [
        ('table_gap_with_units.rules', 3, 5, 'coverage-gap',
         "table 't' leaves (100, 200] GHz uncovered",
         None),
    ]),
    ('table_lookup_string.rules', [
        ('table_lookup_string.rules', 4, 22, 'type-mismatch',
         't() looks up a number, got a string',
         None),
    ]),
    ('table_lookup_unit.rules', [
        ('table_lookup_unit.rules', 5, 22, 'unit-mismatch',
         't() looks up GHz, got Jy',
         None),
    ]),
    ('table_output_units.rules', [
        ('table_output_units.rules', 3, 16, 'unit-mismatch',
         'this row gives a quantity in Jy, earlier rows give a quantity in GHz',
         None),
    ]),
    ('table_outside_domain.rules', [
        ('table_outside_domain.rules', 3, 5, 'coverage-outside',
         "table 't': row (5, 12] reaches outside the domain [0, 10]",
         None),
    ]),
    ('table_overlap.rules', [
        ('table_overlap.rules', 3, 5, 'coverage-overlap',
         "table 't': this row overlaps an earlier row on 5",
         None),
    ]),
    ('table_row_beyond_domain.rules', [
        ('table_row_beyond_domain.rules', 1, 17, 'coverage-gap',
         "table 't' leaves (4, 10] uncovered",
         None),
        ('table_row_beyond_domain.rules', 3, 5, 'coverage-outside',
         "table 't': row [20, 30] reaches outside the domain [0, 10]",
         None),
    ]),
    ('table_row_inside_another.rules', [
        ('table_row_inside_another.rules', 3, 5, 'coverage-overlap',
         "table 't': this row overlaps an earlier row on (2, 5)",
         None),
    ]),
    ('unclosed_paren.rules', [
        ('unclosed_paren.rules', 1, 26, 'syntax',
         "unexpected end of file; expected ')', '*' or '/', '+' or '-', ',', '.', '^', 'and', 'for', 'in', 'not', 'or', a comparison, ...",
         None),
    ]),
    ('unexpected_character.rules', [
        ('unexpected_character.rules', 1, 22, 'syntax',
         "unexpected character '$'; expected '*' or '/', '+' or '-', '.', '^', 'and', 'in', 'not', 'or', a comparison, a unit, end of line",
         None),
    ]),
    ('unknown_aggregate.rules', [
        ('unknown_aggregate.rules', 1, 20, 'unknown-function',
         'median() is not an aggregate',
         'aggregates: all, any, count, list, max, mean, min, percentile, sum, the'),
    ]),
    ('unknown_attribute.rules', [
        ('unknown_attribute.rules', 1, 19, 'unknown-attribute',
         "spw has no attribute 'nchann'",
         "did you mean 'nchan'?"),
    ]),
    ('unknown_function.rules', [
        ('unknown_function.rules', 1, 20, 'unknown-function',
         "unknown function 'sqrtt'",
         "did you mean 'sqrt'?"),
    ]),
    ('unknown_kind.rules', [
        ('unknown_kind.rules', 1, 1, 'unknown-kind',
         "unknown kind 'spww' in derive spww.wide",
         "did you mean 'spw'?"),
    ]),
    ('unknown_name.rules', [
        ('unknown_name.rules', 3, 20, 'unknown-name',
         "unknown name 'tlimt'",
         "did you mean 'tlimit'?"),
    ]),
    ('unknown_unit.rules', [
        ('unknown_unit.rules', 1, 20, 'unknown-unit',
         "unknown unit 'GHzz'",
         'units are astropy names: GHz, mJy/beam, arcsec, deg, m, s, GB, ...'),
    ]),
    ('unterminated_doc_string.rules', [
        ('unterminated_doc_string.rules', 3, 20, 'syntax',
         'unterminated string: a """ string needs a closing """',
         None),
    ]),
    ('unterminated_string.rules', [
        ('unterminated_string.rules', 1, 20, 'syntax',
         'unterminated string: a string needs its closing \'"\' on the same line',
         None),
    ]),
    ('unused_param.rules', [
        ('unused_param.rules', 1, 1, 'unused',
         "parameter 'robust' is never used",
         None),
    ]),
    ('when_not_boolean.rules', [
        ('when_not_boolean.rules', 2, 10, 'type-mismatch',
         "a 'when' condition must be true or false, got a number",
         None),
    ]),
    ('wrong_arity.rules', [
        ('wrong_arity.rules', 1, 20, 'arity',
         'sqrt() takes 1 argument, got 2',
         None),
    ]),
    ('circular_import/cycle_a.rules', [
        ('circular_import/cycle_b.rules', 1, 1, 'import-cycle',
         'circular import: circular_import/cycle_a.rules -> circular_import/cycle_b.rules -> circular_import/cycle_a.rules',
         None),
    ]),
    ('duplicate_across_files/main.rules', [
        ('duplicate_across_files/main.rules', 3, 1, 'duplicate',
         "param 'x' is already declared at duplicate_across_files/base.rules:1:1",
         "write 'override param x ...' to replace it"),
    ]),
    ('import_broken/main.rules', [
        ('import_broken/lib.rules', 1, 23, 'syntax',
         "unexpected end of line; expected '(', '-', '[', 'false', 'inf', 'true', '{', a name, a number, a string",
         None),
    ]),
    ('import_empty_dir/main.rules', [
        ('import_empty_dir/main.rules', 1, 1, 'import-missing',
         "imported directory 'notes' holds no .rules files",
         None),
    ]),
    ('override_nothing/override.rules', [
        ('override_nothing/override.rules', 3, 1, 'override-nothing',
         "override param 'pbb' names nothing declared before it",
         "did you mean 'ppb'?"),
    ]),
    ('override_param_unit/override.rules', [
        ('override_param_unit/override.rules', 3, 32, 'unit-mismatch',
         'override param max_cube_size gives a number, but the parameter it replaces '
         '(override_param_unit/base.rules:1:1) is a quantity in GB',
         None),
    ]),
    ('step_after_missing/override.rules', [
        ('step_after_missing/override.rules', 4, 5, 'override-nothing',
         "step '2 pixels per beam' is placed after 'three pixels per beam', but cascade 'shrink' has no such step",
         "steps: '3 pixels per beam'"),
    ]),
    # ---- cascade and warning extensions (step when, error, repeat, keep limit, several
    # ranking keys, while seeing the candidate, cascade outcomes, warn)
    ('step_when_not_boolean.rules', [
        ('step_when_not_boolean.rules', 5, 21, 'type-mismatch',
         "a step's 'when' condition must be true or false, got a number",
         None),
    ]),
    ('error_when_not_boolean.rules', [
        ('error_when_not_boolean.rules', 6, 36, 'type-mismatch',
         "an 'error' condition must be true or false, got a number",
         None),
    ]),
    ('repeat_unknown_step.rules', [
        ('repeat_unknown_step.rules', 10, 9, 'unknown-name',
         "step 'again' repeats unknown step '3 pixel per beam'",
         "did you mean '3 pixels per beam'?"),
    ]),
    ('repeat_itself.rules', [
        ('repeat_itself.rules', 9, 9, 'bad-repeat',
         "step 'cell' cannot repeat itself",
         None),
    ]),
    ('repeat_later_step.rules', [
        ('repeat_later_step.rules', 8, 9, 'bad-repeat',
         "step 'first' cannot repeat 'cell', which comes after it",
         'a step can repeat only the steps before it'),
    ]),
    ('keep_limit_and_while.rules', [
        ('keep_limit_and_while.rules', 6, 64, 'conflicting-clauses',
         "a keep takes 'limit' or 'while', not both",
         "'limit N' keeps the first N groups; 'while C' keeps groups while C holds"),
    ]),
    ('keep_limit_unit.rules', [
        ('keep_limit_unit.rules', 6, 41, 'unit-mismatch',
         "a 'limit' is a number of groups, got a quantity in GB",
         None),
    ]),
    ('rank_second_key_collection.rules', [
        ('rank_second_key_collection.rules', 6, 36, 'type-mismatch',
         'cannot rank by a collection of intent',
         None),
    ]),
    ('outcome_read_by_own_cascade.rules', [
        ('outcome_read_by_own_cascade.rules', 6, 40, 'cycle',
         "cascade 'shrink' cannot read dataset.shrink_outcome: its outcome is known only when it has finished",
         None),
    ]),
    ('outcome_cycle_through_derive.rules', [
        ('outcome_cycle_through_derive.rules', 3, 1, 'cycle',
         'dependency cycle: dataset.cell -> cascade shrink -> dataset.cell',
         None),
    ]),
    ('outcome_derived.rules', [
        ('outcome_derived.rules', 5, 1, 'duplicate',
         "dataset.shrink_outcome is the outcome of cascade 'shrink'; a rule cannot derive it",
         'give the derived value another name'),
    ]),
    ('outcome_impossible_value.rules', [
        ('outcome_impossible_value.rules', 5, 27, 'never-true',
         "'satisfied' is never a value here; possible values: error, mitigated, not needed, still exceeded, unknown",
         None),
    ]),
    ('warn_not_boolean.rules', [
        ('warn_not_boolean.rules', 1, 35, 'type-mismatch',
         "a warning's 'when' condition must be true or false, got a number",
         None),
    ]),
    ('warn_duplicate.rules', [
        ('warn_duplicate.rules', 2, 1, 'duplicate',
         "warn 'many spectral windows' is already declared at warn_duplicate.rules:1:1",
         'write \'override warn "many spectral windows" ...\' to replace it'),
    ]),
    ('override_warn_nothing.rules', [
        ('override_warn_nothing.rules', 1, 1, 'override-nothing',
         "override warn 'many spectral windows' names nothing declared before it",
         None),
    ]),
    ('while_unknown_attribute.rules', [
        ('while_unknown_attribute.rules', 6, 61, 'unknown-attribute',
         "spw has no attribute 'is_larg'",
         None),
    ]),
]
