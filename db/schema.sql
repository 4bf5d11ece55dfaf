\restrict dbmate

-- Dumped from database version 15.20 (Debian 15.20-0+deb12u1)
-- Dumped by pg_dump version 15.20 (Debian 15.20-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: deliveries; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.deliveries (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    message_id uuid NOT NULL,
    webhook_id uuid NOT NULL,
    attempt integer NOT NULL,
    status text NOT NULL,
    response_status integer,
    error text,
    duration_ms integer NOT NULL,
    next_attempt_at timestamp with time zone,
    last_attempt integer,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT deliveries_attempt_check CHECK ((attempt >= 1)),
    CONSTRAINT deliveries_last_attempt_check CHECK ((last_attempt > attempt)),
    CONSTRAINT deliveries_status_check CHECK ((status = ANY (ARRAY['succeeded'::text, 'failed'::text])))
);


--
-- Name: messages; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.messages (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    client_id text NOT NULL,
    event text NOT NULL,
    payload jsonb NOT NULL,
    status text DEFAULT 'pending'::text NOT NULL,
    idempotency_key text,
    request_hash text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    claim_token uuid,
    claimed_until timestamp with time zone,
    unattempted_webhook_ids uuid[],
    CONSTRAINT messages_status_check CHECK ((status = ANY (ARRAY['pending'::text, 'delivering'::text, 'delivered'::text, 'failed'::text, 'partially_failed'::text])))
);


--
-- Name: schema_migrations; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.schema_migrations (
    version character varying NOT NULL
);


--
-- Name: webhooks; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.webhooks (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    client_id text NOT NULL,
    url text NOT NULL,
    events text[] NOT NULL,
    description text,
    active boolean DEFAULT true NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    deleted_at timestamp with time zone,
    secret_key_id text NOT NULL,
    secret_ciphertext bytea NOT NULL,
    previous_secret_key_id text,
    previous_secret_ciphertext bytea,
    previous_secret_expires_at timestamp with time zone,
    failing_since timestamp with time zone,
    disabled_reason text,
    disabled_at timestamp with time zone,
    CONSTRAINT webhooks_disabled_check CHECK ((((disabled_reason IS NULL) = active) AND ((disabled_at IS NULL) = active))),
    CONSTRAINT webhooks_disabled_reason_check CHECK ((disabled_reason = ANY (ARRAY['gone'::text, 'failing'::text, 'manual'::text]))),
    CONSTRAINT webhooks_previous_secret_complete CHECK ((((previous_secret_key_id IS NULL) = (previous_secret_ciphertext IS NULL)) AND ((previous_secret_key_id IS NULL) = (previous_secret_expires_at IS NULL))))
);


--
-- Name: deliveries deliveries_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.deliveries
    ADD CONSTRAINT deliveries_pkey PRIMARY KEY (id);


--
-- Name: messages messages_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.messages
    ADD CONSTRAINT messages_pkey PRIMARY KEY (id);


--
-- Name: schema_migrations schema_migrations_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.schema_migrations
    ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (version);


--
-- Name: webhooks webhooks_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.webhooks
    ADD CONSTRAINT webhooks_pkey PRIMARY KEY (id);


--
-- Name: deliveries_created_at_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX deliveries_created_at_idx ON public.deliveries USING btree (created_at);


--
-- Name: deliveries_message_page_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX deliveries_message_page_idx ON public.deliveries USING btree (message_id, created_at DESC, id DESC);


--
-- Name: deliveries_message_webhook_attempt_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX deliveries_message_webhook_attempt_idx ON public.deliveries USING btree (message_id, webhook_id, attempt DESC);


--
-- Name: deliveries_next_attempt_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX deliveries_next_attempt_idx ON public.deliveries USING btree (next_attempt_at) WHERE (next_attempt_at IS NOT NULL);


--
-- Name: deliveries_webhook_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX deliveries_webhook_idx ON public.deliveries USING btree (webhook_id);


--
-- Name: messages_claimed_until_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX messages_claimed_until_idx ON public.messages USING btree (claimed_until) WHERE (claimed_until IS NOT NULL);


--
-- Name: messages_client_event_page_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX messages_client_event_page_idx ON public.messages USING btree (client_id, event, created_at DESC, id DESC);


--
-- Name: messages_client_idempotency_key_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX messages_client_idempotency_key_idx ON public.messages USING btree (client_id, idempotency_key) WHERE (idempotency_key IS NOT NULL);


--
-- Name: messages_client_page_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX messages_client_page_idx ON public.messages USING btree (client_id, created_at DESC, id DESC);


--
-- Name: messages_client_status_page_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX messages_client_status_page_idx ON public.messages USING btree (client_id, status, created_at DESC, id DESC);


--
-- Name: messages_finished_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX messages_finished_idx ON public.messages USING btree (updated_at) WHERE (status = ANY (ARRAY['delivered'::text, 'failed'::text, 'partially_failed'::text]));


--
-- Name: messages_unfinished_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX messages_unfinished_idx ON public.messages USING btree (status, updated_at) WHERE (status = ANY (ARRAY['pending'::text, 'delivering'::text]));


--
-- Name: webhooks_client_page_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX webhooks_client_page_idx ON public.webhooks USING btree (client_id, created_at DESC, id DESC) WHERE (deleted_at IS NULL);


--
-- Name: deliveries deliveries_message_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.deliveries
    ADD CONSTRAINT deliveries_message_id_fkey FOREIGN KEY (message_id) REFERENCES public.messages(id) ON DELETE CASCADE;


--
-- Name: deliveries deliveries_webhook_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.deliveries
    ADD CONSTRAINT deliveries_webhook_id_fkey FOREIGN KEY (webhook_id) REFERENCES public.webhooks(id) ON DELETE CASCADE;


--
-- PostgreSQL database dump complete
--

\unrestrict dbmate


--
-- Dbmate schema migrations
--

INSERT INTO public.schema_migrations (version) VALUES
    ('20261125110000'),
    ('20261125110100'),
    ('20261125110200'),
    ('20261201120000'),
    ('20261201130000'),
    ('20261201130100'),
    ('20261201140000');
