\set VERBOSITY sqlstate
CREATE TABLE dept (id INT PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE emp (
    id SERIAL PRIMARY KEY,
    name VARCHAR(20) NOT NULL,
    dept_id INT,
    salary NUMERIC(10,2) CHECK (salary > 0),
    hired DATE,
    active BOOLEAN DEFAULT true
);
CREATE INDEX emp_dept ON emp (dept_id);
INSERT INTO dept VALUES (1, 'eng'), (2, 'ops'), (3, 'empty');
INSERT INTO emp (name, dept_id, salary, hired) VALUES
  ('ann', 1, 120.5, '2020-01-15'),
  ('bob', 1, 99.99, '2021-06-01'),
  ('cy', 2, 80, '2019-03-10'),
  ('di', NULL, 70.25, '2022-11-30');
SELECT * FROM emp ORDER BY id;
SELECT d.name, count(e.id) AS n, sum(e.salary) AS total
  FROM dept d LEFT JOIN emp e ON e.dept_id = d.id
  GROUP BY d.name ORDER BY d.name;
SELECT dept_id, avg(salary), avg(id), round(avg(salary), 1) AS r, max(salary) / count(*) AS q
  FROM emp GROUP BY dept_id ORDER BY dept_id NULLS FIRST;
SELECT name FROM emp WHERE dept_id IN (SELECT id FROM dept WHERE name = 'eng') ORDER BY name;
SELECT name, salary FROM emp e WHERE salary > (SELECT min(salary) FROM emp WHERE dept_id = e.dept_id) ORDER BY 1;
SELECT name, CASE WHEN salary >= 100 THEN 'high' ELSE 'low' END AS band FROM emp ORDER BY name;
WITH big AS (SELECT * FROM emp WHERE salary > 75) SELECT count(*) FROM big;
SELECT name, row_number() OVER (PARTITION BY dept_id ORDER BY salary DESC) AS rk FROM emp WHERE dept_id IS NOT NULL ORDER BY dept_id, rk;
UPDATE emp SET salary = salary + 10 WHERE dept_id = 1;
SELECT name, salary FROM emp WHERE dept_id = 1 ORDER BY name;
DELETE FROM emp WHERE dept_id IN (SELECT id FROM dept WHERE name = 'ops');
SELECT count(*) FROM emp;
INSERT INTO emp (name, dept_id, salary) VALUES ('bad', 1, -5);
INSERT INTO dept VALUES (1, 'dup');
INSERT INTO dept VALUES (4, 'eng') ON CONFLICT (name) DO NOTHING;
INSERT INTO dept VALUES (1, 'eng2') ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name RETURNING id, name;
BEGIN;
UPDATE emp SET active = false WHERE name = 'ann';
SELECT name, active FROM emp WHERE name = 'ann';
ROLLBACK;
SELECT name, active FROM emp WHERE name = 'ann';
BEGIN;
INSERT INTO dept VALUES (9, 'tmp');
SELECT 1 / 0;
SELECT 1;
COMMIT;
SELECT count(*) FROM dept WHERE id = 9;
CREATE VIEW eng AS SELECT e.name, e.salary FROM emp e JOIN dept d ON d.id = e.dept_id WHERE d.name = 'eng2';
SELECT * FROM eng ORDER BY name;
ALTER TABLE dept ADD COLUMN budget BIGINT;
UPDATE dept SET budget = 1000 WHERE id = 2;
SELECT * FROM dept ORDER BY id;
TRUNCATE emp;
SELECT count(*) FROM emp;
SELECT 7 / 2 AS q, -7 / 2 AS nq, 2 ^ 10 AS p, 10 % 3 AS m;
SELECT 'a' || 'b' AS s, length('hello') AS l, upper('x') AS u;
DROP VIEW eng;
DROP TABLE emp;
DROP TABLE IF EXISTS emp;
DROP TABLE dept;
SELECT * FROM dept;
-- COPY FROM STDIN: text and CSV formats, defaults, NULLs, escapes, errors, blocks.
CREATE TABLE cp (id INT PRIMARY KEY, name TEXT, note TEXT DEFAULT 'd', amount NUMERIC(8,2));
COPY cp (id, name, amount) FROM STDIN;
1	ann	1.50
2	\N	2
3	tab\there\\	3.25
\.
COPY cp FROM STDIN WITH (FORMAT csv, HEADER true);
id,name,note,amount
4,"quoted, comma",,4
5,"say ""hi""","",5
\.
COPY cp FROM STDIN CSV;
6,"two
lines",x,6
\.
COPY cp (id, name) FROM STDIN;
7	ok
x	bad
\.
COPY cp (id) FROM STDIN;
1
\.
COPY cp (id, name) FROM STDIN;
8	too	many
\.
COPY nosuch FROM STDIN;
SELECT * FROM cp ORDER BY id;
BEGIN;
COPY cp (id, name) FROM STDIN (FORMAT csv);
9,in block
\.
SELECT count(*) FROM cp;
ROLLBACK;
SELECT count(*) FROM cp;
VACUUM cp;
ANALYZE cp;
CREATE TABLE nokey (a INT, b TEXT);
INSERT INTO nokey VALUES (2, 'two'), (1, 'one');
ALTER TABLE nokey ADD PRIMARY KEY (a);
SELECT * FROM nokey WHERE a = 1;
INSERT INTO nokey VALUES (1, 'again');
ALTER TABLE nokey ADD PRIMARY KEY (b);
BEGIN;
VACUUM nokey;
ROLLBACK;
ALTER TABLE nokey ADD UNIQUE (b);
INSERT INTO nokey VALUES (3, 'two');
ALTER TABLE nokey ADD CONSTRAINT nokey_a_uniq UNIQUE (a);
INSERT INTO nokey VALUES (1, 'dup a');
SELECT * FROM nokey ORDER BY a;
