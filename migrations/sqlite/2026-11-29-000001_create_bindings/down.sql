DROP TABLE bindings;
DROP TABLE virtual_numbers;
