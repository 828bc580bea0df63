import Foundation
import Testing
@testable import MaasBackupCore

/// How a database's part of dump.sql is spread over parallel psql sessions (issue 25): phases told by
/// pg_dump's entry headers, a barrier before anything that depends on what came before, the session
/// settings given to every new session. The loads themselves run in DatabaseRestoreTests and
/// SQLTrustTests against PostgreSQL.
@Suite struct LoadRouterTests {
    /// A database part as pg_dump 15 writes it: pre-data, data (two tables, a sequence value), then
    /// post-data (a primary key, an index, a foreign key, a trigger).
    static let part = """
        SET statement_timeout = 0;
        SET client_encoding = 'UTF8';
        SELECT pg_catalog.set_config('search_path', '', false);

        --
        -- Name: node; Type: TABLE; Schema: public; Owner: maas
        --

        SET default_table_access_method = heap;
        CREATE TABLE public.node (
            id integer NOT NULL
        );

        --
        -- Data for Name: node; Type: TABLE DATA; Schema: public; Owner: maas
        --

        COPY public.node (id) FROM stdin;
        1
        2
        \\.

        --
        -- Data for Name: event; Type: TABLE DATA; Schema: public; Owner: maas
        --

        COPY public.event (id, node_id) FROM stdin;
        1\t1
        2\t2
        3\t1
        \\.

        --
        -- Name: node_id_seq; Type: SEQUENCE SET; Schema: public; Owner: maas
        --

        SELECT pg_catalog.setval('public.node_id_seq', 2, true);

        --
        -- Name: node node_pkey; Type: CONSTRAINT; Schema: public; Owner: maas
        --

        ALTER TABLE ONLY public.node
            ADD CONSTRAINT node_pkey PRIMARY KEY (id);

        --
        -- Name: event_node_idx; Type: INDEX; Schema: public; Owner: maas
        --

        SET default_tablespace = '';
        CREATE INDEX event_node_idx ON public.event USING btree (node_id);

        --
        -- Name: event event_node_fk; Type: FK CONSTRAINT; Schema: public; Owner: maas
        --

        ALTER TABLE ONLY public.event
            ADD CONSTRAINT event_node_fk FOREIGN KEY (node_id) REFERENCES public.node(id);

        --
        -- Name: node node_trigger; Type: TRIGGER; Schema: public; Owner: maas
        --

        CREATE TRIGGER node_trigger AFTER INSERT ON public.node FOR EACH ROW EXECUTE FUNCTION public.f();
        """

    /// Every line's decision, with the splitter's COPY state as the loader passes it.
    func route(jobs: Int, _ text: String = part) throws -> (router: LoadRouter, decisions: [(String, LoadRouter.Decision)]) {
        var router = LoadRouter(jobs: jobs)
        var splitter = DumpSplitter(names: ["maasdb": "maasdb_restoring_T"])
        var out: [(String, LoadRouter.Decision)] = []
        for (i, line) in text.components(separatedBy: "\n").enumerated() {
            let was = splitter.inCopy
            _ = try splitter.next(line, number: i + 1)
            out.append((line, router.route(Substring(line), number: i + 1, wasInCopy: was, isInCopy: splitter.inCopy)))
        }
        return (router, out)
    }

    func decision(_ d: [(String, LoadRouter.Decision)], _ prefix: String) -> LoadRouter.Decision? {
        d.first { $0.0.hasPrefix(prefix) }?.1
    }

    @Test func oneJobIsOneSessionInDumpOrder() throws {
        let (_, d) = try route(jobs: 1)
        #expect(d.allSatisfy { $0.1 == LoadRouter.Decision(open: nil, target: .lane(0)) })
    }

    @Test func phasesAndBarriers() throws {
        let (router, d) = try route(jobs: 3)
        // Pre-data in the first session, opened lazily by the loader.
        #expect(decision(d, "CREATE TABLE public.node") == .init(open: nil, target: .lane(0)))
        // The first data entry ends pre-data: three sessions for the data.
        #expect(decision(d, "-- Data for Name: node;") == .init(open: 3, target: .lane(0)))
        #expect(decision(d, "-- Data for Name: event;")?.open == nil)
        #expect(decision(d, "COPY public.node") == .init(open: nil, target: .copyStart(table: "public.node")))
        #expect(decision(d, "COPY public.event") == .init(open: nil, target: .copyStart(table: "public.event")))
        #expect(decision(d, "3\t1") == .init(open: nil, target: .copyRow))
        #expect(d.filter { $0.0 == "\\." }.map(\.1.target) == [.copyEnd, .copyEnd])
        #expect(decision(d, "SELECT pg_catalog.setval") == .init(open: nil, target: .lane(0)))
        // Post-data: the constraint and the index share three sessions after a barrier ...
        #expect(decision(d, "-- Name: node node_pkey; Type: CONSTRAINT")?.open == 3)
        // ... the index's session setting goes to every session of the run ...
        #expect(decision(d, "SET default_tablespace") == .init(open: nil, target: .all))
        // ... each entry whole in one session, the larger table's index in another session than the key.
        let key = try #require(decision(d, "ALTER TABLE ONLY public.node")?.target)
        #expect(decision(d, "    ADD CONSTRAINT node_pkey")?.target == key)
        let index = try #require(decision(d, "CREATE INDEX event_node_idx")?.target)
        #expect(index != key)
        // The foreign key waits for both, alone; the trigger stays in that one session.
        #expect(decision(d, "-- Name: event event_node_fk; Type: FK CONSTRAINT") == .init(open: 1, target: .lane(0)))
        #expect(decision(d, "    ADD CONSTRAINT event_node_fk")?.target == .lane(0))
        #expect(decision(d, "-- Name: node node_trigger; Type: TRIGGER")?.open == nil)
        // What every new session is given first: pg_dump's opening settings and the ones it changed.
        #expect(router.preamble.map(\.line) == ["SET statement_timeout = 0;", "SET client_encoding = 'UTF8';",
                                                "SELECT pg_catalog.set_config('search_path', '', false);",
                                                "SET default_table_access_method = heap;", "SET default_tablespace = '';"])
        #expect(router.preamble.first?.number == 1)
        #expect(router.tableBytes == ["public.node": 4, "public.event": 12])
    }

    @Test func indexesGoWhereTheLeastWorkIs() throws {
        var text = "--\n-- Data for Name: a; Type: TABLE DATA; Schema: public; Owner: maas\n--\nCOPY public.a (x) FROM stdin;\n"
        text += String(repeating: "aaaaaaaaa\n", count: 100) + "\\.\n"
        text += "COPY public.b (x) FROM stdin;\nb\n\\.\nCOPY public.c (x) FROM stdin;\nc\n\\.\n"
        for (i, table) in ["a", "b", "c", "a"].enumerated() {
            text += "--\n-- Name: i\(i); Type: INDEX; Schema: public; Owner: maas\n--\n"
            text += "CREATE INDEX i\(i) ON public.\(table) USING btree (x);\n"
        }
        let (router, d) = try route(jobs: 2, text)
        let lanes = d.filter { $0.0.hasPrefix("CREATE INDEX") }.map(\.1.target)
        // a (1000 bytes) to session 0, b and c to session 1, the second index on a to session 1 too.
        #expect(lanes == [.lane(0), .lane(1), .lane(1), .lane(1)])
        #expect(router.laneCost[0] >= 1000 && router.laneCost[1] >= 1000)
    }

    @Test func headerLookalikesInsideCopyDataOrWithoutTheirDashesAreData() throws {
        let text = """
            --
            -- Data for Name: t; Type: TABLE DATA; Schema: public; Owner: maas
            --
            COPY public.t (x) FROM stdin;
            --
            -- Name: t t_pkey; Type: CONSTRAINT; Schema: public; Owner: maas
            \\.
            -- Name: u; Type: INDEX; Schema: public; Owner: maas
            SELECT 1;
            """
        let (router, d) = try route(jobs: 2, text)
        #expect(d.compactMap(\.1.open) == [2])
        #expect(decision(d, "-- Name: t t_pkey")?.target == .copyRow)
        #expect(decision(d, "SELECT 1;")?.target == .lane(0))
        #expect(router.phase == .data)
    }

    @Test func entryTypesAndTables() {
        #expect(LoadRouter.entryType("-- Name: node node_pkey; Type: CONSTRAINT; Schema: public; Owner: maas") == "CONSTRAINT")
        #expect(LoadRouter.entryType("-- Data for Name: node; Type: TABLE DATA; Schema: public; Owner: maas") == "TABLE DATA")
        #expect(LoadRouter.entryType("-- Name: x; Type: FK CONSTRAINT; Schema: public; Owner: -") == "FK CONSTRAINT")
        #expect(LoadRouter.entryType("-- Dumped from database version 15.14") == nil)
        #expect(LoadRouter.statementTable("ALTER TABLE ONLY public.node") == "public.node")
        #expect(LoadRouter.statementTable("CREATE UNIQUE INDEX \"x y\" ON ONLY public.\"Ev\" USING btree (a);") == "public.\"Ev\"")
        #expect(LoadRouter.statementTable("CREATE INDEX i ON public.event USING btree (a);") == "public.event")
        #expect(LoadRouter.statementTable("GRANT ALL ON TABLE public.x TO maas;") == nil)
        #expect(LoadRouter.copyTable("COPY public.\"Ev\" (a, b) FROM stdin;") == "public.\"Ev\"")
    }
}

/// How many sessions a load takes from the server (MAAS keeps running during it).
@Suite struct LoadSessionsTests {
    @Test func neverMoreThanHalfTheFreeConnectionsAndAtLeastOne() {
        #expect(DumpLoader.sessions(wanted: 4, freeConnections: 90) == 4)
        #expect(DumpLoader.sessions(wanted: 4, freeConnections: 5) == 2)
        #expect(DumpLoader.sessions(wanted: 4, freeConnections: 1) == 1)
        #expect(DumpLoader.sessions(wanted: 4, freeConnections: 0) == 1)
        #expect(DumpLoader.sessions(wanted: 3, freeConnections: nil) == 3)
        #expect(DumpLoader.sessions(wanted: 0, freeConnections: nil) == 1)
    }
}
