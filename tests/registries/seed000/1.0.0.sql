-- Municipal tenant schema (seed 000), version 1.0.0.
-- 27 tables. Every table except tenants carries tenant_id.
-- NOTE: tables are deliberately NOT in dependency order: several child
-- tables (user_roles, properties, tax_receipts, tax_payments,
-- tax_assessments, meeting_attendees, meetings) appear before the parents
-- they reference. SQLite accepts such forward references; tools that
-- create tables one by one must order them topologically.
-- wards.parent_ward_id is a self-reference.

-- ---------------------------------------------------------------------
-- Tenant & user management
-- ---------------------------------------------------------------------

CREATE TABLE tenants (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    slug TEXT NOT NULL UNIQUE,
    is_active INTEGER NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
    contact_email TEXT,
    settings TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TEXT,
    deleted_at TEXT
);

-- Child of users and roles, written before both.
CREATE TABLE user_roles (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role_id INTEGER NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    assigned_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
    assigned_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    UNIQUE (user_id, role_id)
);

CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    email TEXT NOT NULL,
    username TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    first_name TEXT,
    last_name TEXT,
    phone TEXT,
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive', 'suspended')),
    last_login_at TEXT,
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TEXT,
    deleted_at TEXT,
    UNIQUE (tenant_id, email),
    UNIQUE (tenant_id, username)
);

CREATE TABLE roles (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    slug TEXT NOT NULL,
    description TEXT,
    permissions TEXT NOT NULL DEFAULT '[]',
    is_system INTEGER NOT NULL DEFAULT 0 CHECK (is_system IN (0, 1)),
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TEXT,
    deleted_at TEXT,
    UNIQUE (tenant_id, slug)
);

-- ---------------------------------------------------------------------
-- Property system
-- ---------------------------------------------------------------------

-- Child of wards, property_types, property_addresses; written before them.
CREATE TABLE properties (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    property_number TEXT NOT NULL,
    ward_id INTEGER NOT NULL REFERENCES wards(id),
    property_type_id INTEGER NOT NULL REFERENCES property_types(id),
    address_id INTEGER REFERENCES property_addresses(id) ON DELETE SET NULL,
    owner_name TEXT NOT NULL,
    owner_user_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
    area_sq_m REAL CHECK (area_sq_m IS NULL OR area_sq_m > 0),
    built_year INTEGER,
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disputed', 'demolished')),
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TEXT,
    deleted_at TEXT,
    UNIQUE (tenant_id, property_number)
);

CREATE TABLE wards (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    code TEXT NOT NULL,
    parent_ward_id INTEGER REFERENCES wards(id) ON DELETE SET NULL,
    councillor_name TEXT,
    population INTEGER CHECK (population IS NULL OR population >= 0),
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'merged', 'dissolved')),
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TEXT,
    deleted_at TEXT,
    UNIQUE (tenant_id, code)
);

CREATE TABLE property_types (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    slug TEXT NOT NULL,
    description TEXT,
    is_residential INTEGER NOT NULL DEFAULT 1 CHECK (is_residential IN (0, 1)),
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TEXT,
    deleted_at TEXT,
    UNIQUE (tenant_id, slug)
);

CREATE TABLE property_addresses (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    ward_id INTEGER REFERENCES wards(id) ON DELETE SET NULL,
    line1 TEXT NOT NULL,
    line2 TEXT,
    locality TEXT,
    city TEXT NOT NULL,
    postal_code TEXT,
    latitude REAL,
    longitude REAL,
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TEXT,
    deleted_at TEXT
);

-- ---------------------------------------------------------------------
-- Tax system
-- ---------------------------------------------------------------------

-- Child of tax_payments; written before it.
CREATE TABLE tax_receipts (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    payment_id INTEGER NOT NULL REFERENCES tax_payments(id) ON DELETE CASCADE,
    receipt_number TEXT NOT NULL,
    amount REAL NOT NULL CHECK (amount >= 0),
    issued_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    issued_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
    status TEXT NOT NULL DEFAULT 'issued' CHECK (status IN ('issued', 'cancelled')),
    cancelled_at TEXT,
    cancel_reason TEXT,
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TEXT,
    deleted_at TEXT,
    UNIQUE (tenant_id, receipt_number)
);

-- Child of tax_assessments; written before it.
CREATE TABLE tax_payments (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    assessment_id INTEGER NOT NULL REFERENCES tax_assessments(id),
    property_id INTEGER NOT NULL REFERENCES properties(id) ON DELETE CASCADE,
    paid_by_user_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
    amount REAL NOT NULL CHECK (amount > 0),
    payment_method TEXT NOT NULL DEFAULT 'cash' CHECK (payment_method IN ('cash', 'cheque', 'card', 'upi', 'bank_transfer')),
    transaction_ref TEXT,
    paid_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    status TEXT NOT NULL DEFAULT 'completed' CHECK (status IN ('pending', 'completed', 'failed', 'refunded')),
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TEXT,
    deleted_at TEXT
);

-- Child of tax_types, tax_rates, tax_contracts; written before them.
CREATE TABLE tax_assessments (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    property_id INTEGER NOT NULL REFERENCES properties(id) ON DELETE CASCADE,
    tax_type_id INTEGER NOT NULL REFERENCES tax_types(id),
    tax_rate_id INTEGER REFERENCES tax_rates(id) ON DELETE SET NULL,
    contract_id INTEGER REFERENCES tax_contracts(id) ON DELETE SET NULL,
    financial_year TEXT NOT NULL,
    assessed_value REAL NOT NULL DEFAULT 0,
    tax_amount REAL NOT NULL DEFAULT 0,
    penalty_amount REAL NOT NULL DEFAULT 0,
    due_date TEXT,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'partially_paid', 'paid', 'waived')),
    assessed_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TEXT,
    deleted_at TEXT,
    UNIQUE (property_id, tax_type_id, financial_year)
);

CREATE TABLE tax_types (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    code TEXT NOT NULL,
    description TEXT,
    frequency TEXT NOT NULL DEFAULT 'annual' CHECK (frequency IN ('monthly', 'quarterly', 'half_yearly', 'annual', 'one_time')),
    is_active INTEGER NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TEXT,
    deleted_at TEXT,
    UNIQUE (tenant_id, code)
);

CREATE TABLE tax_calculation_types (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    code TEXT NOT NULL,
    formula TEXT,
    description TEXT,
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TEXT,
    deleted_at TEXT,
    UNIQUE (tenant_id, code)
);

CREATE TABLE tax_rates (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    tax_type_id INTEGER NOT NULL REFERENCES tax_types(id) ON DELETE CASCADE,
    calculation_type_id INTEGER NOT NULL REFERENCES tax_calculation_types(id),
    property_type_id INTEGER REFERENCES property_types(id) ON DELETE SET NULL,
    ward_id INTEGER REFERENCES wards(id) ON DELETE SET NULL,
    rate REAL NOT NULL CHECK (rate >= 0),
    minimum_amount REAL NOT NULL DEFAULT 0,
    effective_from TEXT NOT NULL,
    effective_to TEXT,
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TEXT,
    deleted_at TEXT,
    CHECK (effective_to IS NULL OR effective_to >= effective_from)
);

CREATE TABLE tax_contracts (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    property_id INTEGER NOT NULL REFERENCES properties(id) ON DELETE CASCADE,
    tax_type_id INTEGER NOT NULL REFERENCES tax_types(id),
    contract_number TEXT NOT NULL,
    contractor_name TEXT NOT NULL,
    amount REAL NOT NULL CHECK (amount >= 0),
    start_date TEXT NOT NULL,
    end_date TEXT,
    status TEXT NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'active', 'expired', 'terminated')),
    approved_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TEXT,
    deleted_at TEXT,
    UNIQUE (tenant_id, contract_number)
);

CREATE TABLE miscellaneous_payments (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    property_id INTEGER REFERENCES properties(id) ON DELETE SET NULL,
    receipt_id INTEGER REFERENCES tax_receipts(id) ON DELETE SET NULL,
    collected_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
    payer_name TEXT NOT NULL,
    purpose TEXT NOT NULL,
    amount REAL NOT NULL CHECK (amount > 0),
    payment_method TEXT NOT NULL DEFAULT 'cash' CHECK (payment_method IN ('cash', 'cheque', 'card', 'upi', 'bank_transfer')),
    paid_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    status TEXT NOT NULL DEFAULT 'completed' CHECK (status IN ('pending', 'completed', 'refunded')),
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TEXT,
    deleted_at TEXT
);

-- ---------------------------------------------------------------------
-- Activity system
-- ---------------------------------------------------------------------

CREATE TABLE activity_types (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    slug TEXT NOT NULL,
    description TEXT,
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TEXT,
    deleted_at TEXT,
    UNIQUE (tenant_id, slug)
);

CREATE TABLE activity_templates (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    activity_type_id INTEGER NOT NULL REFERENCES activity_types(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT,
    default_duration_minutes INTEGER CHECK (default_duration_minutes IS NULL OR default_duration_minutes > 0),
    checklist TEXT,
    created_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TEXT,
    deleted_at TEXT
);

CREATE TABLE activities (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    activity_type_id INTEGER NOT NULL REFERENCES activity_types(id),
    template_id INTEGER REFERENCES activity_templates(id) ON DELETE SET NULL,
    ward_id INTEGER REFERENCES wards(id) ON DELETE SET NULL,
    title TEXT NOT NULL,
    description TEXT,
    location TEXT,
    scheduled_start TEXT,
    scheduled_end TEXT,
    status TEXT NOT NULL DEFAULT 'planned' CHECK (status IN ('planned', 'in_progress', 'completed', 'cancelled')),
    organizer_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TEXT,
    deleted_at TEXT
);

CREATE TABLE activity_participants (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    activity_id INTEGER NOT NULL REFERENCES activities(id) ON DELETE CASCADE,
    user_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
    participant_name TEXT,
    role TEXT NOT NULL DEFAULT 'participant',
    attendance_status TEXT NOT NULL DEFAULT 'registered' CHECK (attendance_status IN ('registered', 'attended', 'absent')),
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TEXT,
    UNIQUE (activity_id, user_id)
);

CREATE TABLE activity_reports (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    activity_id INTEGER NOT NULL REFERENCES activities(id) ON DELETE CASCADE,
    submitted_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
    summary TEXT NOT NULL,
    outcomes TEXT,
    attachments TEXT,
    status TEXT NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'submitted', 'approved')),
    submitted_at TEXT,
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TEXT,
    deleted_at TEXT
);

-- ---------------------------------------------------------------------
-- Meeting system
-- ---------------------------------------------------------------------

-- Child of meetings; written before it.
CREATE TABLE meeting_attendees (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    meeting_id INTEGER NOT NULL REFERENCES meetings(id) ON DELETE CASCADE,
    user_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
    attendee_name TEXT,
    designation TEXT,
    attendance_status TEXT NOT NULL DEFAULT 'invited' CHECK (attendance_status IN ('invited', 'present', 'absent', 'excused')),
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TEXT,
    UNIQUE (meeting_id, user_id)
);

-- Child of meeting_templates; written before it.
CREATE TABLE meetings (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    template_id INTEGER REFERENCES meeting_templates(id) ON DELETE SET NULL,
    ward_id INTEGER REFERENCES wards(id) ON DELETE SET NULL,
    title TEXT NOT NULL,
    meeting_type TEXT NOT NULL DEFAULT 'general',
    scheduled_at TEXT NOT NULL,
    location TEXT,
    status TEXT NOT NULL DEFAULT 'scheduled' CHECK (status IN ('scheduled', 'held', 'postponed', 'cancelled')),
    chaired_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
    minutes TEXT,
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TEXT,
    deleted_at TEXT
);

CREATE TABLE meeting_templates (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    meeting_type TEXT NOT NULL DEFAULT 'general',
    default_agenda TEXT,
    default_duration_minutes INTEGER NOT NULL DEFAULT 60,
    created_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TEXT,
    deleted_at TEXT
);

CREATE TABLE meeting_topics (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    meeting_id INTEGER NOT NULL REFERENCES meetings(id) ON DELETE CASCADE,
    title TEXT NOT NULL,
    description TEXT,
    sequence INTEGER NOT NULL DEFAULT 0,
    presenter_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'discussed', 'deferred')),
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TEXT,
    deleted_at TEXT
);

CREATE TABLE meeting_resolutions (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    meeting_id INTEGER NOT NULL REFERENCES meetings(id) ON DELETE CASCADE,
    topic_id INTEGER REFERENCES meeting_topics(id) ON DELETE SET NULL,
    resolution_number TEXT NOT NULL,
    body TEXT NOT NULL,
    votes_for INTEGER NOT NULL DEFAULT 0,
    votes_against INTEGER NOT NULL DEFAULT 0,
    abstentions INTEGER NOT NULL DEFAULT 0,
    outcome TEXT NOT NULL DEFAULT 'deferred' CHECK (outcome IN ('passed', 'rejected', 'deferred')),
    proposed_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TEXT,
    deleted_at TEXT,
    UNIQUE (tenant_id, resolution_number)
);

-- ---------------------------------------------------------------------
-- System tables
-- ---------------------------------------------------------------------

CREATE TABLE audit_logs (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
    action TEXT NOT NULL,
    entity_type TEXT NOT NULL,
    entity_id INTEGER,
    old_values TEXT,
    new_values TEXT,
    ip_address TEXT,
    user_agent TEXT,
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- ---------------------------------------------------------------------
-- Indexes (foreign keys and common filters; UNIQUE constraints above
-- already cover their leading columns)
-- ---------------------------------------------------------------------

CREATE INDEX idx_users_tenant_status ON users(tenant_id, status);
CREATE INDEX idx_roles_tenant_id ON roles(tenant_id);
CREATE INDEX idx_user_roles_tenant_id ON user_roles(tenant_id);
CREATE INDEX idx_user_roles_role_id ON user_roles(role_id);

CREATE INDEX idx_wards_tenant_id ON wards(tenant_id);
CREATE INDEX idx_wards_parent_ward_id ON wards(parent_ward_id);
CREATE INDEX idx_property_types_tenant_id ON property_types(tenant_id);
CREATE INDEX idx_property_addresses_tenant_id ON property_addresses(tenant_id);
CREATE INDEX idx_property_addresses_ward_id ON property_addresses(ward_id);
CREATE INDEX idx_properties_ward_id ON properties(ward_id);
CREATE INDEX idx_properties_property_type_id ON properties(property_type_id);
CREATE INDEX idx_properties_owner_user_id ON properties(owner_user_id);

CREATE INDEX idx_tax_types_tenant_id ON tax_types(tenant_id);
CREATE INDEX idx_tax_calculation_types_tenant_id ON tax_calculation_types(tenant_id);
CREATE INDEX idx_tax_rates_tenant_id ON tax_rates(tenant_id);
CREATE INDEX idx_tax_rates_tax_type_id ON tax_rates(tax_type_id);
CREATE INDEX idx_tax_contracts_property_id ON tax_contracts(property_id);
CREATE INDEX idx_tax_contracts_tax_type_id ON tax_contracts(tax_type_id);
CREATE INDEX idx_tax_assessments_tenant_year ON tax_assessments(tenant_id, financial_year);
CREATE INDEX idx_tax_assessments_tax_type_id ON tax_assessments(tax_type_id);
CREATE INDEX idx_tax_payments_tenant_paid_at ON tax_payments(tenant_id, paid_at);
CREATE INDEX idx_tax_payments_assessment_id ON tax_payments(assessment_id);
CREATE INDEX idx_tax_payments_property_id ON tax_payments(property_id);
CREATE INDEX idx_tax_receipts_payment_id ON tax_receipts(payment_id);
CREATE INDEX idx_miscellaneous_payments_tenant_paid_at ON miscellaneous_payments(tenant_id, paid_at);
CREATE INDEX idx_miscellaneous_payments_property_id ON miscellaneous_payments(property_id);

CREATE INDEX idx_activity_types_tenant_id ON activity_types(tenant_id);
CREATE INDEX idx_activity_templates_activity_type_id ON activity_templates(activity_type_id);
CREATE INDEX idx_activities_tenant_status ON activities(tenant_id, status);
CREATE INDEX idx_activities_activity_type_id ON activities(activity_type_id);
CREATE INDEX idx_activities_ward_id ON activities(ward_id);
CREATE INDEX idx_activity_participants_user_id ON activity_participants(user_id);
CREATE INDEX idx_activity_reports_activity_id ON activity_reports(activity_id);

CREATE INDEX idx_meetings_tenant_scheduled_at ON meetings(tenant_id, scheduled_at);
CREATE INDEX idx_meetings_template_id ON meetings(template_id);
CREATE INDEX idx_meeting_templates_tenant_id ON meeting_templates(tenant_id);
CREATE INDEX idx_meeting_attendees_user_id ON meeting_attendees(user_id);
CREATE INDEX idx_meeting_topics_meeting_id ON meeting_topics(meeting_id);
CREATE INDEX idx_meeting_resolutions_meeting_id ON meeting_resolutions(meeting_id);
CREATE INDEX idx_meeting_resolutions_topic_id ON meeting_resolutions(topic_id);

CREATE INDEX idx_audit_logs_tenant_created_at ON audit_logs(tenant_id, created_at);
CREATE INDEX idx_audit_logs_entity ON audit_logs(entity_type, entity_id);
